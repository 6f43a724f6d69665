"""SAC-from-BC: the actor starts at the BC policy, then plain soft actor-critic on the environment's reward.

Components: prior 'uniform' (the KL to it is an entropy bonus at temperature beta = 0.01), reward 'env', no
demonstrations in the batches (n_demo = 0) and a critic that starts untrained (no SARSA pretraining). Budgets and
networks as `base`, so it is compared with CSIL at equal cost.
"""

from __future__ import annotations

import dataclasses

from csil_lite.config import RunConfig
from csil_lite.configs import base


def get(budget: str) -> RunConfig:
    cfg = base.get(budget)
    agent = dataclasses.replace(cfg.agent, prior="uniform", reward="env", kl="mc", refine_reward=False, n_demo=0)
    return dataclasses.replace(cfg, algo="sac_bc", agent=agent, critic_pretrain_steps=0)
