"""SACfD: soft actor-critic from demonstrations on the sparse task reward.

Components: reward 'sparse' (-1 per step until success, which terminates), prior 'uniform' (entropy bonus), twin
LayerNorm scalar critics (the reference's critic), UTD 1, and the demonstrations at a fixed ratio of 0.2 of every
batch (the batch size of `base` kept: n_demo = round(0.2 * (n_demo + n_online))). No SARSA pretraining and no
action-gradient penalty (CSIL's). The actor starts at the BC policy, as for every algorithm here.
"""

from __future__ import annotations

import dataclasses

from csil_lite.config import RunConfig
from csil_lite.configs import base

DEMO_RATIO = 0.2


def get(budget: str) -> RunConfig:
    cfg = base.get(budget)
    total = cfg.agent.n_demo + cfg.agent.n_online
    n_demo = round(DEMO_RATIO * total)
    agent = dataclasses.replace(cfg.agent, prior="uniform", reward="sparse", kl="mc", refine_reward=False,
                                grad_penalty=0.0, n_demo=n_demo, n_online=total - n_demo)
    nets = dataclasses.replace(cfg.nets, critic_norm="layer", critic_head="scalar", critic_ensemble=2)
    return dataclasses.replace(cfg, algo="sacfd", agent=agent, nets=nets, critic_pretrain_steps=0)
