"""Chapter 10's experiment: does HetStat still know where its demonstrations were when it sees an embedding?

The task (`strip_task`) is the research note's: a 2-D state s = (u, v); the demonstrator acts on a strip
(v ~ N(0, 0.05^2)) and online states lie off it (|v| in [0.4, 0.9]); the expert's action is 0.9 tanh(s M). The
policy is cloned from the demonstrations with the library's BC (`pretrain.train_bc`, faithful loss), seeing
either the state itself or a `SyntheticEmbedding` of it (optionally with the state appended as an oracle, and
optionally through a remedy fitted on re-embeddings of the demonstrated states). `gap_run` returns the entropy
gap between online and expert states (`diagnostics.entropy_gap`) and the nearest-neighbour ratio at the input,
the bottleneck and the stationary features (`diagnostics.nearest_neighbour_ratio`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from csil_lite import diagnostics as dg
from csil_lite.config import Remedy
from csil_lite.embeddings import fit_remedy, synthetic_embedding, with_oracle


class StripTask(NamedTuple):
    demo_states: np.ndarray  # [n_demo, 2]
    demo_actions: np.ndarray  # [n_demo, 2]
    online_states: np.ndarray  # [n_off, 2]


def strip_task(n_demo: int = 1024, n_online: int = 512, *, seed: int = 0) -> StripTask:
    """Demonstrations on the strip |v| ~ N(0, 0.05^2), online states at |v| in [0.4, 0.9], u ~ U(-1, 1) for both."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1234).normal(size=(2, 2))  # the expert is the same for every seed
    demo = np.stack([rng.uniform(-1, 1, n_demo), rng.normal(0.0, 0.05, n_demo)], axis=1)
    v = rng.uniform(0.4, 0.9, n_online) * rng.choice([-1.0, 1.0], n_online)
    online = np.stack([rng.uniform(-1, 1, n_online), v], axis=1)
    return StripTask(demo.astype(np.float32), (0.9 * np.tanh(demo @ mix)).astype(np.float32),
                     online.astype(np.float32))


class GapResult(NamedTuple):
    gap: float  # latent entropy gap, online minus expert (nats)
    nn_input: float  # nearest-neighbour ratio off/on at the policy's input
    nn_bottleneck: float  # ... at the trunk's bottleneck h
    nn_features: float  # ... at the stationary features phi
    mse: float  # the BC fit's mean squared action error on the demonstrations
    gap_exact: float  # the gap with the exact Bayesian-linear head on the same features (diagnostics.exact_head_std)


def policy_inputs(task: StripTask, dim: int | None, *, seed: int, oracle_scale: float | None = None,
                  remedy: Remedy = "none", signal_dims: int = 8, nuisance_latent: int = 32,
                  input_scale: float = 1.0, remedy_pairs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the policy sees at the demonstrated and the online states: the state (`dim=None`) or a `dim`-dimensional
    embedding, through the remedy (fitted on re-embeddings of the demonstrated states), with the oracle appended,
    times `input_scale`. `remedy_pairs`: how many pairs of re-embeddings estimate the nuisance covariance (the
    demonstrated states cycled; default one pair per demonstrated state)."""
    if dim is None:
        if remedy != "none" or oracle_scale is not None:
            raise ValueError("gap_run: a remedy or an oracle needs an embedding (dim)")
        x_demo, x_online = task.demo_states, task.online_states
    else:
        embed = synthetic_embedding(2, dim, signal_dims=signal_dims, nuisance_latent=nuisance_latent, seed=seed)
        states = task.demo_states if remedy_pairs is None else np.resize(task.demo_states, (remedy_pairs, 2))
        transform = fit_remedy(remedy, embed, states, seed=10_000 + seed)
        x_demo = transform(embed(task.demo_states, seed=20_000 + seed))
        x_online = transform(embed(task.online_states, seed=30_000 + seed))
        if oracle_scale is not None:
            x_demo = with_oracle(x_demo, task.demo_states, oracle_scale)
            x_online = with_oracle(x_online, task.online_states, oracle_scale)
    return np.float32(input_scale) * x_demo, np.float32(input_scale) * x_online


def _setup(dim, seed: int, hidden, n_demo: int, inputs: dict):
    """(strip task, demo inputs, online inputs, HetStat policy) of one gap experiment."""
    from csil_lite.nets import HetStatPolicy

    task = strip_task(n_demo, seed=seed)
    x_demo, x_online = policy_inputs(task, dim, seed=seed, **inputs)
    return task, x_demo, x_online, HetStatPolicy(2, hidden=tuple(hidden), bottleneck=12, features=128)


def gap_run(dim: int | None, *, seed: int = 0, steps: int = 1000, hidden=(128, 128), n_demo: int = 1024,
            **inputs) -> GapResult:
    """BC on the strip task from the state (`dim=None`) or a `dim`-dimensional embedding; the gap and NN ratios.

    `inputs`: `policy_inputs`'s options (oracle_scale, remedy, signal_dims, nuisance_latent, input_scale; the
    last multiplies whatever the policy sees: a control for the input's scale against the HetStat kernel's
    initial length-scale, which the trunk must learn to bridge).
    """
    from csil_lite.pretrain import train_bc

    task, x_demo, x_online, policy = _setup(dim, seed, hidden, n_demo, inputs)
    fit = train_bc(policy, x_demo, task.demo_actions, steps=steps, seed=seed, progress=False)
    gap = dg.entropy_gap(policy, fit.params, x_demo, x_online).gap
    on, off = dg.stage_outputs(policy, fit.params, x_demo), dg.stage_outputs(policy, fit.params, x_online)
    nn = {k: dg.nearest_neighbour_ratio(on[k], off[k], seed=seed) for k in on}
    mean, _ = policy.apply(fit.params, x_demo)
    mse = float(np.mean((np.tanh(np.asarray(mean)) - task.demo_actions) ** 2))
    exact_on = dg.exact_head_std(policy, fit.params, x_demo, x_demo)
    exact_off = dg.exact_head_std(policy, fit.params, x_demo, x_online)
    gap_exact = float(dg.gaussian_entropy(exact_off).mean() - dg.gaussian_entropy(exact_on).mean())
    return GapResult(gap, nn["input"], nn["bottleneck"], nn["features"], mse, gap_exact)


def gap_over_training(dim: int | None, *, seed: int = 0, steps: int = 1000, every: int = 100, hidden=(128, 128),
                      n_demo: int = 1024, **inputs) -> dict[str, np.ndarray]:
    """The thesis's Fig. 6.4 in miniature: mean latent entropy at expert and at online states every `every` BC
    steps. Returns {"steps", "entropy_on", "entropy_off"} (arrays over the evaluations, step 0 included)."""
    from csil_lite.pretrain import train_bc

    task, x_demo, x_online, policy = _setup(dim, seed, hidden, n_demo, inputs)
    rows = []

    def measure(done: int, params) -> None:
        g = dg.entropy_gap(policy, params, x_demo, x_online)
        rows.append((done, g.entropy_on, g.entropy_off))

    measure(0, policy.init(jax.random.split(jax.random.PRNGKey(seed))[0], x_demo[:1]))  # train_bc's own init
    train_bc(policy, x_demo, task.demo_actions, steps=steps, seed=seed, progress=False, chunk=every, on_chunk=measure)
    steps_, on, off = map(np.asarray, zip(*rows))
    return {"steps": steps_, "entropy_on": on, "entropy_off": off}


def gap_grid(configs: dict[str, dict], seeds, *, progress: bool = True, **common) -> dict[str, list[GapResult]]:
    """`gap_run(**common, **config, seed=s)` for every named config and seed, with a progress bar."""
    from tqdm.auto import tqdm

    seeds = list(seeds)
    out: dict[str, list[GapResult]] = {}
    with tqdm(total=len(configs) * len(seeds), desc="gap runs", disable=not progress) as bar:
        for name, config in configs.items():
            out[name] = []
            for seed in seeds:
                out[name].append(gap_run(**{**common, **config}, seed=seed))
                bar.update()
    return out


# -- the end-to-end test: CSIL whose policy sees an embedding -----------------------------------------------


class PolicyGap(NamedTuple):
    gap: float  # latent entropy gap of the BC policy: its own stochastic rollouts minus the demonstrated states
    #             seen afresh (another nuisance draw), nats
    gap_in_sample: float  # ... minus the demonstrations it was trained on (their own nuisance draw)
    nn_input: float  # nearest-neighbour ratio, rollouts vs demonstrations, at the policy's input
    nn_bottleneck: float  # ... at the trunk's bottleneck
    online_states: int  # how many rollout observations were measured


def bc_policy_gap(cfg, setup, *, episodes: int = 10, seed: int = 0) -> PolicyGap:
    """The gap of a prepared run's BC policy (`loop.prepare`) between the demonstrated states and the states of its
    own stochastic rollouts on the run's task, seen through the run's observation view (the thesis's measurement).

    The demonstrated states are measured twice: as the policy saw them in training, and re-embedded with a fresh
    nuisance draw, as it would see them online. With few demonstrations a policy can memorise the training
    draws' nuisance, and the in-sample gap then says nothing about what happens on the next visit of the same
    state: the fresh draw is the primary measure."""
    from csil_lite.agents import make_act
    from csil_lite.embeddings import embedding_edge
    from csil_lite.envs.registry import env_kwargs, make_env
    from csil_lite.evaluation import rollout_observations
    from csil_lite.loop import load_demos

    raw = load_demos(cfg)
    view = embedding_edge(cfg.embed, lambda: raw.obs, seed=cfg.seed)
    envs = [view.wrap(make_env(cfg.task, seed=cfg.seed + 2, **env_kwargs(cfg.obs, cfg.image_size)))
            for _ in range(episodes)]
    act, keys = make_act(setup.agent), iter(jax.random.split(jax.random.PRNGKey(seed), 100_000))
    try:
        online = rollout_observations(envs, lambda o: np.asarray(act(setup.bc_params, o, next(keys), False)),
                                      episodes=episodes, seed=cfg.seed + 5)
    finally:
        for e in envs:
            e.close()
    policy, params, demo = setup.agent.policy, setup.bc_params, np.asarray(setup.demos.obs)
    fresh = view.reembed(raw.obs, seed)
    on, off = dg.stage_outputs(policy, params, fresh), dg.stage_outputs(policy, params, online)
    return PolicyGap(dg.entropy_gap(policy, params, fresh, online).gap, dg.entropy_gap(policy, params, demo, online).gap,
                     dg.nearest_neighbour_ratio(on["input"], off["input"], seed=seed),
                     dg.nearest_neighbour_ratio(on["bottleneck"], off["bottleneck"], seed=seed), len(online))


def csil_from_embedding(embed: dict, run_dir, *, seed: int = 0, budget: str = "preview",
                        task: str = "pointmass-obstacles", progress: bool = False, gap_episodes: int = 10,
                        **overrides) -> dict:
    """CSIL (the `budget` preset) on `task` with the policy seeing `embed` (`EmbedConfig` fields; {} = the
    state): BC, the BC policy's gap on its own rollouts, then the online phase. Resumable in `run_dir`.
    Returns {"gap": PolicyGap as a dict, "steps", "success"} (the evaluations, step 0 = BC)."""
    from csil_lite.config import with_overrides
    from csil_lite.configs import preset
    from csil_lite.loop import prepare, read_metrics, train

    cfg = with_overrides(preset(budget, algo="csil"), task=task, seed=seed, embed=dict(embed), **overrides)
    setup = prepare(cfg, progress=progress, run_dir=run_dir)
    gap = bc_policy_gap(cfg, setup, episodes=gap_episodes, seed=seed)
    (Path(run_dir) / "gap.json").write_text(json.dumps(gap._asdict()))  # kept if the online phase fails
    train(cfg, run_dir, progress=progress, setup=setup)
    rows = read_metrics(run_dir)
    return {"gap": gap._asdict(), "steps": [r["step"] for r in rows], "success": [r["success_rate"] for r in rows]}
