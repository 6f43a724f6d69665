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


def preset(budget: str = "preview", algo: str = "csil", **overrides: Any) -> RunConfig:
    """The named algorithm `algo` (a key of `ALGORITHMS`) at `budget`, with overrides.

    Budgets (`config.BUDGETS`): 'preview' (CPU minutes), 'reference' (the reference CSIL code's budget: 250k env
    steps, 25k BC, 5k SARSA steps) or 'paper' (the seed paper's Table II: `configs.base.paper`). Overrides:
    RunConfig fields; `agent` and `nets` take dicts of their fields. An unknown budget or algo is a `ValueError`
    naming the choices.
    """
    return with_overrides(get(algo, budget), **overrides)


__all__ = ["ALGORITHMS", "BUDGETS", "get", "preset", "with_overrides"]
