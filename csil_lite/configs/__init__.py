"""Named algorithms, one small file each, composed from `base`: `get(budget: str) -> RunConfig`.

    from csil_lite.configs import preset
    cfg = preset("preview", algo="csil", seed=1, agent={"beta": 0.1})

`preset(budget, algo=..., **overrides)` is the one entry point: a lookup of `algo` in `ALGORITHMS` at `budget`
(one of `config.BUDGETS`: 'preview', 'reference', 'paper'; the result's `RunConfig.budget`), then the overrides.
Every algorithm is the same agent core with other components (prior, reward source, critic, update schedule, KL
estimator) or budgets. This package builds on `csil_lite.config`; that module imports nothing from here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from csil_lite.config import BUDGETS, RunConfig, with_overrides
from csil_lite.configs import bc, csil, csilpp, sac_bc, sacfd, xqc_od
from csil_lite.configs.base import check_budget

ALGORITHMS: dict[str, ModuleType] = {"csil": csil, "sac_bc": sac_bc, "bc": bc, "csilpp": csilpp, "xqc_od": xqc_od,
                                     "sacfd": sacfd}


def get(algo: str, budget: str) -> RunConfig:
    """The named algorithm's configuration at `budget`: 'preview' (CPU minutes), 'reference' (the reference CSIL
    code's) or 'paper' (the seed paper's Table II)."""
    check_budget(budget)
    try:
        module = ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"unknown algo {algo!r}; choose from {tuple(ALGORITHMS)}") from None
    return module.get(budget)


# From pixels: the image encoder of each algorithm (the seed paper's section III-B and Table II): CSIL++ has one
# ResNet [16, 32, 64, 128] with spatial-softmax keypoints per camera; the original CSIL (and every other algorithm
# here) one IMPALA-style network shared by the cameras.
IMAGE_ENCODERS: dict[str, str] = {"csilpp": "resnet_per_camera"}
PREVIEW_IMAGE_SIZE = 64  # preview frames (the paper's: 84); rendering and the encoders' cost grow with it


def from_pixels(cfg: RunConfig) -> RunConfig:
    """`cfg` learning from the cameras: obs 'image', its algorithm's image encoder (`IMAGE_ENCODERS`, else the
    shared IMPALA network), frames of `PREVIEW_IMAGE_SIZE` in the preview (84 otherwise), and a replay no larger
    than the run's env steps (frames cost ~1,000x a state: 2 x 84 x 84 x 3 bytes each)."""
    size = PREVIEW_IMAGE_SIZE if cfg.budget == "preview" else 84
    return with_overrides(cfg, obs="image", image_size=size, replay_capacity=min(cfg.replay_capacity, cfg.env_steps),
                          nets={"encoder": IMAGE_ENCODERS.get(cfg.algo, "impala_shared")})


def preset(budget: str = "preview", algo: str = "csil", **overrides: Any) -> RunConfig:
    """The named algorithm `algo` (a key of `ALGORITHMS`) at `budget`, with overrides.

    Budgets (`config.BUDGETS`): 'preview' (CPU minutes), 'reference' (the reference CSIL code's budget: 250k env
    steps, 25k BC, 5k SARSA steps) or 'paper' (the seed paper's Table II: `configs.base.paper`). Overrides:
    RunConfig fields; `agent` and `nets` take dicts of their fields. An unknown budget or algo is a `ValueError`
    naming the choices. `obs='image'` applies `from_pixels` before the other overrides.
    """
    cfg = get(algo, budget)
    if overrides.get("obs") == "image":  # the algorithm's pixel configuration first, the explicit overrides after it
        cfg = from_pixels(with_overrides(cfg, env_steps=overrides.get("env_steps", cfg.env_steps)))
    return with_overrides(cfg, **overrides)


# What `smoke` shrinks: step counts, evaluation and data, never a size (widths, features, batch, UTD, atoms,
# replay capacity), so a smoke run builds, compiles and runs exactly the networks and updates of its preset.
SMOKE_STEPS = dict(bc_steps=20, critic_pretrain_steps=10, env_steps=200, learning_starts=100, eval_every=100,
                   eval_episodes=1, num_demos=3)


def smoke(cfg: RunConfig) -> RunConfig:
    """`cfg` with a handful of steps (`SMOKE_STEPS`; at most 2 final re-evaluations) and all its sizes: proves on a
    CPU that a `paper` preset's path builds, compiles and runs end to end (tests/test_paper_smoke.py)."""
    steps = dict(SMOKE_STEPS, learning_starts=max(SMOKE_STEPS["learning_starts"], cfg.agent.n_online))
    steps["env_steps"] = max(steps["env_steps"], 2 * steps["learning_starts"])
    return with_overrides(cfg, final_eval_repeats=min(cfg.final_eval_repeats, 2), **steps)


__all__ = ["ALGORITHMS", "BUDGETS", "IMAGE_ENCODERS", "PREVIEW_IMAGE_SIZE", "SMOKE_STEPS", "from_pixels", "get",
           "preset", "smoke", "with_overrides"]
