"""Throughput of CSIL: jitted agent updates per second and environment steps per second of the whole loop.

Two scales: the "preview" preset's networks and batches, and the reference's (HetStat 256-wide trunk, D=256
features, 256-wide critic, batch 256 demo + 256 online). Updates run on random batches of the right shapes (the update cost
does not depend on the values), after a compile/warm-up call; the median of `--repeats` timings is reported. The
loop figure is a short real `train` run on the toy task with learning starting at once, so every env step pays for
one action, one env step, one batch assembly and one update (BC/critic pretraining excluded: they run before).

    python benchmarks/bench_csil_throughput.py [--task pointmass-obstacles] [--updates 50] [--loop-steps 600]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.agents.core import init_state, make_update
from csil_lite.assembly import make_agent
from csil_lite.config import RunConfig
from csil_lite.configs import preset
from csil_lite.data.transitions import Transitions
from csil_lite.loop import Setup, load_demos, train

REFERENCE_NETS = dict(policy_hidden=(256, 256), features=256, critic_hidden=(256, 256))
REFERENCE_AGENT = dict(n_demo=256, n_online=256)


def configs(task: str) -> dict[str, RunConfig]:
    return {
        "preview": preset("preview", task=task),
        "reference-width": preset("preview", task=task, nets=REFERENCE_NETS, agent=REFERENCE_AGENT),
    }


def random_batch(cfg: RunConfig, obs_dim: int, act_dim: int, rng: np.random.Generator) -> Transitions:
    u, b = cfg.agent.utd, cfg.agent.n_demo + cfg.agent.n_online
    obs = rng.standard_normal((u, b, obs_dim)).astype(np.float32)
    act = rng.uniform(-0.9, 0.9, (u, b, act_dim)).astype(np.float32)
    z = np.zeros((u, b), np.float32)
    return Transitions(obs, act, z, obs.copy(), act.copy(), z, z)


def fresh_setup(cfg: RunConfig, demos: Transitions) -> Setup:
    """Agent state with untrained params of the right shapes (pretraining is not what is timed)."""
    agent = make_agent(cfg, demos.obs_spec, demos.act_dim)
    p = agent.policy.init(jax.random.PRNGKey(0), demos.obs[:1])
    agent, _ = agent.resolve(p, demos, jax.random.PRNGKey(2))
    q = agent.critic.init(jax.random.PRNGKey(1), demos.obs[:1], demos.action[:1])
    return Setup(agent, demos, np.zeros(0), np.zeros(0), init_state(agent, p, q))


def bench_updates(setup: Setup, cfg: RunConfig, n: int, repeats: int) -> float:
    update = make_update(setup.agent)
    rng = np.random.default_rng(0)
    batches = [jax.tree.map(jnp.asarray, random_batch(cfg, setup.demos.obs.shape[1], setup.demos.act_dim, rng))
               for _ in range(4)]
    state, key = setup.state, jax.random.PRNGKey(0)
    state, m = update(state, batches[0], key)  # compile
    jax.block_until_ready(m)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            state, m = update(state, batches[i % 4], jax.random.fold_in(key, i))
        jax.block_until_ready((state, m))
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_loop(setup: Setup, cfg: RunConfig, steps: int) -> float:
    """Env steps/s of `train` with updates from the first batch on; warm-up (compiles) is subtracted out."""
    warm = max(cfg.agent.n_online, 200)
    # The last evaluation must fall on the last step: round the timed steps up to a multiple of `warm` (with 256
    # online rows, warm = 256 and the default 600 steps left the run without a final row: a division by zero).
    steps = -(-steps // warm) * warm
    loop_cfg = RunConfig.from_dict({**cfg.to_dict(), "env_steps": warm + steps, "learning_starts": cfg.agent.n_online,
                                    "eval_every": warm, "eval_episodes": 1})
    with tempfile.TemporaryDirectory() as d:
        train(loop_cfg, d, progress=False, resume=False, setup=setup)
        from csil_lite.loop import read_metrics

        rows = read_metrics(d)
    # rows: step 0, step `warm`, ..., last; time between the eval at `warm` and the end measures steady state
    t_warm = next(r["wall_time"] for r in rows if r["step"] == warm)
    return steps / (rows[-1]["wall_time"] - t_warm)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="pointmass-obstacles")
    p.add_argument("--updates", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loop-steps", type=int, default=600)
    args = p.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; task {args.task}")
    for name, cfg in configs(args.task).items():
        demos = load_demos(RunConfig.from_dict({**cfg.to_dict(), "num_demos": 10}))
        setup = fresh_setup(cfg, demos)
        ups = bench_updates(setup, cfg, args.updates, args.repeats)
        sps = bench_loop(setup, cfg, args.loop_steps)
        n = cfg.nets
        print(f"{name:15s} policy {n.policy_hidden} D={n.features} critic {n.critic_hidden} "
              f"batch {cfg.agent.n_demo}+{cfg.agent.n_online} utd {cfg.agent.utd}: "
              f"{ups:8.1f} updates/s   {sps:8.1f} env steps/s (loop, 1 update per step)")


if __name__ == "__main__":
    main()
