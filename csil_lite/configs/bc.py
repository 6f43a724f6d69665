"""BC: the HetStat (or MLP) policy fitted to the demonstrations, then only evaluated on the online schedule.

Nothing is learned online (`learn_online=False`), so the agent's components are never used; they are set to the
cheapest ones (uniform prior, environment reward, no critic pretraining).
"""

from __future__ import annotations

import dataclasses

from csil_lite.config import RunConfig
from csil_lite.configs import base


def get(budget: str) -> RunConfig:
    cfg = base.get(budget)
    agent = dataclasses.replace(cfg.agent, prior="uniform", reward="env", kl="mc", refine_reward=False)
    return dataclasses.replace(cfg, algo="bc", agent=agent, critic_pretrain_steps=0, learn_online=False)
