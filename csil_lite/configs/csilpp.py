"""CSIL++: CSIL with the XQC critic (the seed paper's section IV and Table II).

Components: CSIL's (prior 'bc', coherent reward refined online, SARSA-pretrained critic) with
- the critic batch-normalised with weight normalisation ('batch_weight': BN on the input and after every hidden
  Dense, kernels projected to unit fan-in norm after every step), the XQC recipe for a well-conditioned critic;
- a categorical head with 101 atoms placed by quantiles of the demonstrations' discounted returns under the
  coherent reward (`heads.quantile_support`), cross-entropy to the projected Bellman target;
- twin critics (the target from the lower one), 4 critic steps per actor step (UTD 4), and the exact KL of the
  latent Gaussians to the BC prior in place of the single-sample estimate.

Budget 'paper' is Table II: batch 128, replay 250k, warm-up 10k, KL coefficient 0.3, 50k BC steps, 20k critic
(SARSA) steps, 510k env steps, 200 demonstrations (`base.paper`). Its support keeps XQC's [-8, 0].

Preview: the support must cover the returns the coherent reward gives. CSIL's preview critic reaches Q of about
-26 on the toy task, far below XQC's -8, and mass beyond the support is clipped onto its end atom (the value is
then biased towards -8). The preview support is therefore [-60, 0]; the atoms are still placed by the quantiles of
the demonstrations' returns inside it, and the clipped-atom fraction is logged to check it.
"""

from __future__ import annotations

import dataclasses

from csil_lite.config import RunConfig
from csil_lite.configs import csil


def get(preview: bool, paper_budget: bool = False) -> RunConfig:
    cfg = csil.get(preview, paper_budget)
    agent = dataclasses.replace(cfg.agent, kl="exact", utd=4)
    nets = dataclasses.replace(cfg.nets, critic_norm="batch_weight", critic_head="categorical", critic_atoms=101,
                               critic_ensemble=2)
    if paper_budget:
        agent = dataclasses.replace(agent, beta=0.3)
    if preview:
        nets = dataclasses.replace(nets, critic_v_min=-60.0, critic_v_max=0.0)
    return dataclasses.replace(cfg, algo="csilpp", agent=agent, nets=nets)
