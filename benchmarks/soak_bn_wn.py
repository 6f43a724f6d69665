"""Soak test of the CSIL++ critic: many updates of the BN+WN categorical twin-critic agent, checking that the
parameters stay finite and bounded.

The agent is `preset("preview", algo="csilpp")` on the toy task (preview network sizes, batch and UTD 4), after
a short BC and SARSA phase (`prepare`). Batches are *replayed demonstrations*: rows sampled uniformly from the
demonstration transitions (s, a, s'), n_demo + n_online per critic step; no environment interaction, so the run
measures the update's numerical stability, not learning. Every `--every` updates (one update = `utd` critic steps
and one actor step) it prints the L2 norms of the critic and actor params, an effective learning-rate proxy
||theta_{t+1} - theta_t|| / ||theta_t|| of one update for each, the critic loss, Q and the clipped-atom fraction,
and asserts that every parameter, statistic and metric is finite.

    python benchmarks/soak_bn_wn.py [--updates 20000] [--every 4000] [--chunk 500]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.config import preset
from csil_lite.loop import prepare


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))))


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=20_000)
    p.add_argument("--every", type=int, default=4_000)
    p.add_argument("--chunk", type=int, default=500, help="updates per jitted lax.scan call")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.every % args.chunk:
        raise SystemExit(f"--every ({args.every}) must be a multiple of --chunk ({args.chunk})")

    cfg = preset("preview", algo="csilpp", task="pointmass-reach", bc_steps=500, critic_pretrain_steps=200,
                 seed=args.seed)
    t0 = time.perf_counter()
    setup = prepare(cfg, progress=False)
    print(f"prepare (BC {cfg.bc_steps}, SARSA {cfg.critic_pretrain_steps}): {time.perf_counter() - t0:.1f} s; "
          f"critic {cfg.nets.critic_norm} x {cfg.nets.critic_head} ({cfg.nets.critic_atoms} atoms on "
          f"[{setup.agent.head.atoms[0]:.1f}, {setup.agent.head.atoms[-1]:.1f}]) x {cfg.nets.critic_ensemble}, "
          f"utd {cfg.agent.utd}")
    from csil_lite.agents.core import actor_step, critic_step

    agent, data = setup.agent, jax.tree.map(jnp.asarray, setup.demos)
    rows, utd = cfg.agent.n_demo + cfg.agent.n_online, cfg.agent.utd

    def one_update(state, key):
        k_idx, k_upd = jax.random.split(key)
        idx = jax.random.randint(k_idx, (utd, rows), 0, data.obs.shape[0])
        batch = jax.tree.map(lambda x: x[idx], data)
        keys = jax.random.split(k_upd, utd + 1)
        state, m = jax.lax.scan(lambda s, xs: critic_step(agent, s, *xs), state, (batch, keys[1:]))
        state, am = actor_step(agent, state, jax.tree.map(lambda x: x[-1], batch), keys[0])
        return state, {**jax.tree.map(jnp.mean, m), **am}

    run_chunk = jax.jit(lambda s, k: jax.lax.scan(one_update, s, jax.random.split(k, args.chunk)))
    step_once = jax.jit(one_update)
    state, key = setup.state, jax.random.PRNGKey(args.seed)
    print(f"{'update':>7} {'|critic|':>9} {'|actor|':>9} {'lr_eff critic':>13} {'lr_eff actor':>12} "
          f"{'loss':>7} {'q':>8} {'clip':>6} {'s':>6}")
    t0, done = time.perf_counter(), 0
    while done < args.updates:
        key, k = jax.random.split(key)
        state, metrics = run_chunk(state, k)
        done += args.chunk
        if done % args.every == 0 or done >= args.updates:
            key, k = jax.random.split(key)
            nxt, _ = step_once(state, k)
            c, a = _norm(state.critic.params), _norm(state.actor.params)
            dc = _norm(jax.tree.map(lambda x, y: x - y, nxt.critic.params, state.critic.params)) / c
            da = _norm(jax.tree.map(lambda x, y: x - y, nxt.actor.params, state.actor.params)) / a
            last = {k_: float(v[-1]) for k_, v in metrics.items()}
            print(f"{done:7d} {c:9.3f} {a:9.3f} {dc:13.2e} {da:12.2e} {last['critic_loss']:7.3f} "
                  f"{last['q']:8.3f} {last.get('clipped_frac', float('nan')):6.3f} {time.perf_counter() - t0:6.0f}",
                  flush=True)
            assert _finite(state) and all(np.isfinite(v) for v in last.values()), f"non-finite at update {done}"
    print(f"{done} updates ({done * utd} critic steps) in {time.perf_counter() - t0:.0f} s: all finite")


if __name__ == "__main__":
    main()
