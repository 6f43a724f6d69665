"""Soak test of the CSIL++ critic: many updates of the BN+WN categorical twin-critic agent, checking that the
parameters stay finite and bounded.

The agent is `preset("preview", algo="csilpp")` on the toy task (preview network sizes, batch and UTD 4), after
a short BC and SARSA phase (`prepare`). The updates are `csil_lite.probes.critic_probe`'s: the agent's own critic
and actor steps on *replayed demonstrations* (rows sampled uniformly from the demonstration transitions (s, a, s'),
n_demo + n_online per critic step); no environment interaction, so the run measures the update's numerical
stability, not learning. Every `--every` updates (one update = `utd` critic steps and one actor step) it prints
the L2 norms of the critic params, of its hidden kernels and of the actor params, the effective learning rate
||theta_{t+1} - theta_t|| / ||theta_t|| of one update (mean over the interval) for the critic and the actor, the
critic loss, Q and the clipped-atom fraction, and asserts that every parameter, statistic and metric is finite
and, with weight normalisation, that the hidden kernels stay on the unit-fan-in sphere.

    python benchmarks/soak_bn_wn.py [--updates 20000] [--every 4000] [--norm batch_weight]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from csil_lite.configs import preset
from csil_lite.loop import prepare
from csil_lite.probes import critic_probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=20_000)
    p.add_argument("--every", type=int, default=4_000, help="updates per checkpoint (one jitted lax.scan call)")
    p.add_argument("--norm", default="batch_weight", help="critic normalisation (batch_weight: CSIL++'s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.updates % args.every:
        raise SystemExit(f"--updates ({args.updates}) must be a multiple of --every ({args.every})")

    cfg = preset("preview", algo="csilpp", task="pointmass-reach", bc_steps=500, critic_pretrain_steps=200,
                 seed=args.seed, nets={"critic_norm": args.norm})
    t0 = time.perf_counter()
    setup = prepare(cfg, progress=False)
    print(f"prepare (BC {cfg.bc_steps}, SARSA {cfg.critic_pretrain_steps}): {time.perf_counter() - t0:.1f} s; "
          f"critic {cfg.nets.critic_norm} x {cfg.nets.critic_head} ({cfg.nets.critic_atoms} atoms on "
          f"[{setup.agent.critic.head.atoms[0]:.1f}, {setup.agent.critic.head.atoms[-1]:.1f}]) x {cfg.nets.critic_ensemble}, "
          f"utd {cfg.agent.utd}, critic weight decay {cfg.agent.critic_weight_decay}")
    t = critic_probe(setup, args.updates, args.every, seed=args.seed)
    print(f"{'update':>7} {'|critic|':>9} {'|W_hid|':>8} {'|actor|':>9} {'lr_eff critic':>13} {'lr_eff actor':>12} "
          f"{'loss':>7} {'q':>8} {'clip':>6}")
    for i in range(len(t.updates)):
        print(f"{t.updates[i]:7d} {t.critic_norm[i]:9.3f} {t.hidden_norm[i]:8.3f} {t.actor_norm[i]:9.3f} "
              f"{t.lr_critic[i]:13.2e} {t.lr_actor[i]:12.2e} {t.critic_loss[i]:7.3f} {t.q[i]:8.3f} "
              f"{t.clipped_frac[i]:6.3f}")
    bad = np.flatnonzero(~t.finite)
    assert bad.size == 0, f"non-finite at update {t.updates[bad[0]]}"
    if args.norm == "batch_weight":
        sphere = np.sqrt(cfg.nets.critic_ensemble * sum(cfg.nets.critic_hidden))
        assert np.allclose(t.hidden_norm, sphere, rtol=1e-4), (t.hidden_norm, sphere)
    print(f"{t.updates[-1]} updates ({t.critic_steps[-1]} critic steps) in {t.seconds:.0f} s "
          f"(compile ~{t.compile_seconds:.0f} s): all finite; critic norm {t.critic_norm[0]:.2f} -> "
          f"{t.critic_norm[-1]:.2f}, hidden kernels {t.hidden_norm[0]:.2f} -> {t.hidden_norm[-1]:.2f}")


if __name__ == "__main__":
    main()
