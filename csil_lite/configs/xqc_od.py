"""XQC+OD: the XQC actor-critic on the sparse task reward, with the offline demonstrations in every batch
(the seed paper's baseline in Fig. 5).

Components: reward 'sparse' (-1 per step until success, which terminates), prior 'uniform' (the KL to it is an
entropy bonus, i.e. SAC's regulariser), no reward learning; demonstrations mixed into every batch at a fixed ratio
(half the rows, as `base`'s n_demo = n_online); the actor initialised at the BC-pretrained HetStat policy (as for
every algorithm here: `init_state` starts the actor from BC); the XQC critic: batch + weight normalisation, a
categorical head with 101 atoms, twin critics, UTD 2 (XQC's). No SARSA pretraining and no action-gradient penalty
(both are CSIL's, tied to its dense coherent reward).

Support: sparse returns lie in [-1/(1-gamma), 0] = [-100, 0] for gamma 0.99, so the support is exactly that range
(the atoms placed by the demonstrations' return quantiles inside it) and no Bellman target is ever clipped.
"""

from __future__ import annotations

import dataclasses

from csil_lite.config import RunConfig
from csil_lite.configs import base


def get(budget: str) -> RunConfig:
    cfg = base.get(budget)
    agent = dataclasses.replace(cfg.agent, prior="uniform", reward="sparse", kl="mc", refine_reward=False,
                                grad_penalty=0.0, utd=2)
    nets = dataclasses.replace(cfg.nets, critic_norm="batch_weight", critic_head="categorical", critic_atoms=101,
                               critic_ensemble=2, critic_v_min=-1.0 / (1.0 - agent.gamma), critic_v_max=0.0)
    return dataclasses.replace(cfg, algo="xqc_od", agent=agent, nets=nets, critic_pretrain_steps=0)
