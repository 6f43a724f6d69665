"""What every named algorithm shares: the data, step counts and networks of each budget (`config.BUDGETS`).

reference: the reference CSIL code's budget and sizes, which are `RunConfig`'s defaults: 250k
env steps with learning from 10k, 25k BC steps, 5k SARSA steps at 1e-4, batches of 256 demo + 256 online rows,
HetStat 256-256 trunk with D=256 features and a 256-256 LayerNorm critic. (The seed paper's own Table II is a
different budget: 'paper', below.)

preview: CPU minutes on the toy task, measured there (chapter 5):
- 25 demonstrations and 5k BC steps: with 2k steps BC stayed at 16-18 % success, with 5k it reached 36-65 %.
- 2k SARSA steps at 1e-3, 10k env steps with learning from 1k, a 100k replay.
- tau = 0.05: a preview's few thousand updates are too few for tau = 0.005 to propagate values over a
  150-step horizon. actor lr 1e-4: chosen with CSIL's preview values when chapter 5's preset was re-measured.
- 100 evaluation episodes (cheap: toy episodes run in lockstep): +-5 points of binomial noise at p = 0.5.
- Networks: HetStat 64-64 trunk with D=128 features (the head costs d_a * D^2), a 128-128 critic.
- HetStat health (issue 9; chapter 5 prints and asserts it): demonstrated actions clipped to +-0.9
  (`demo_action_margin`), an initial log length-scale of -1 (reference -5), 128 features and BC lr 3e-3. Without
  them the toy task's saturated expert actions (40 % of dimensions exactly +-1) drive the BC std to its ceiling
  0.866 on the demonstrations as well as around them; with them it is ~0.18 on and ~0.43 around them (2.4x).
"""

from __future__ import annotations

import dataclasses

from csil_lite.config import BUDGETS, AgentConfig, NetworkConfig, RunConfig


def check_budget(budget: str) -> None:
    """A `ValueError` naming the budgets unless `budget` is one of them."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {BUDGETS}")


def paper() -> RunConfig:
    """The seed paper's Table II budget (shared by every algorithm at budget 'paper'): 200 demonstrations, 50k BC
    steps, 20k SARSA steps, 510k env steps with learning from 10k (the warm-up), a 250k replay and a batch of 128
    (64 demonstration + 64 online rows: CSIL's batches are half demonstrations). Network sizes and learning rates
    are "same as CSIL", i.e. the reference's (`RunConfig`'s defaults). The paper's evaluation protocol: the best
    evaluated parameters re-evaluated 5 x `eval_episodes` times at the end (`final_eval_repeats`)."""
    cfg = RunConfig()
    return dataclasses.replace(cfg, num_demos=200, bc_steps=50_000, critic_pretrain_steps=20_000, env_steps=510_000,
                               learning_starts=10_000, replay_capacity=250_000, final_eval_repeats=5,
                               agent=dataclasses.replace(cfg.agent, n_demo=64, n_online=64))


def get(budget: str) -> RunConfig:
    """The shared configuration at `budget`: 'preview', 'reference' or 'paper' (Table II's, `paper`), with
    `RunConfig.budget` set to it."""
    check_budget(budget)
    if budget == "paper":
        return dataclasses.replace(paper(), budget="paper")
    if budget == "reference":
        return RunConfig(budget="reference")
    return RunConfig(
        budget="preview",
        num_demos=25, bc_steps=5_000, bc_lr=3e-3, demo_action_margin=0.1, critic_pretrain_steps=2_000,
        critic_pretrain_lr=1e-3, env_steps=10_000, learning_starts=1_000, replay_capacity=100_000, eval_every=1_000,
        eval_episodes=100,
        agent=AgentConfig(n_demo=128, n_online=128, actor_lr=1e-4, tau=0.05),
        nets=NetworkConfig(policy_hidden=(64, 64), features=128, critic_hidden=(128, 128),
                           init_log_input_scale=-1.0),
    )
