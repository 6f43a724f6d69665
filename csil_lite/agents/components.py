"""The agent's components, chosen once from an `AgentConfig` by `make_agent`; the update only calls them.

- prior: the KL's reference policy p0(a|s): `BCPrior` (the frozen BC policy) or `UniformPrior` (on [-1, 1]^d,
  which turns the KL into an entropy bonus up to a constant);
- KL estimator: `MonteCarloKL` (log pi(a|s) - log p0(a|s) at the sampled action) or `ExactKL` (the closed-form
  KL of the latent Gaussians, which needs a Gaussian prior);
- reward source: `CoherentReward` (the coherent reward of a refinable copy of the BC policy, refined on every
  critic step), `EnvironmentReward` (the reward stored with the transitions) or `SparseReward` (-1 per step,
  0 on the absorbing success step: the minimum-time reward of SACfD / XQC+OD).

Each component is an immutable NamedTuple of static settings, so it can be closed over by jitted functions.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from csil_lite.agents.state import TrainState
from csil_lite.coherent import policy_reward, refinement_log_ratio, refinement_loss, value_clip
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import latent_kl, tanh_normal

# -- priors --------------------------------------------------------------------------------------------------------


class BCPrior(NamedTuple):
    """The frozen BC policy (its params live in `AgentState.prior`)."""

    policy: nn.Module

    def latent(self, params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.policy.apply(params, obs)

    def log_prob(self, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        mean, std = self.latent(params, obs)
        return tanh_normal(mean, std).log_prob(actions)


class UniformPrior(NamedTuple):
    """The uniform density on [-1, 1]^d: log p0 = -d log 2 everywhere (its params are ignored)."""

    action_dim: int

    def log_prob(self, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return jnp.full(actions.shape[:-1], -self.action_dim * math.log(2.0))


Prior = Union[BCPrior, UniformPrior]

# -- KL estimators -------------------------------------------------------------------------------------------------


class MonteCarloKL(NamedTuple):
    """The single-sample estimate log pi(a|s) - log p0(a|s) at the reparameterised sample a ~ pi(.|s)."""

    prior: Prior

    def __call__(self, mean: jax.Array, std: jax.Array, actions: jax.Array, prior_params, obs: jax.Array):
        return tanh_normal(mean, std).log_prob(actions) - self.prior.log_prob(prior_params, obs, actions)


class ExactKL(NamedTuple):
    """KL(pi(.|s) || p0(.|s)) in closed form: that of the latent Gaussians (`distributions.latent_kl`)."""

    prior: BCPrior

    def __call__(self, mean: jax.Array, std: jax.Array, actions: jax.Array, prior_params, obs: jax.Array):
        prior_mean, prior_std = self.prior.latent(prior_params, obs)
        return latent_kl(mean, std, prior_mean, prior_std)


KLEstimator = Union[MonteCarloKL, ExactKL]

# -- reward sources ------------------------------------------------------------------------------------------------


class CoherentReward(NamedTuple):
    """r(s, a) of a reward network (a copy of the BC policy) with the run's variant, scale, shift and density.

    `__call__` is *the* reward function: the critic's targets, the SARSA pretraining, the loop's evaluations and
    the chapters all call it. `refine` takes one step of reward refinement on a mixed batch whose first `n_demo`
    rows are demonstrations.
    """

    policy: nn.Module
    variant: str
    scale: float
    shift: float | None
    density: str
    refines: bool
    kl_weight: float
    n_demo: int

    learned = True  # the reward depends on params (evaluations log its correlation with the task's reward)

    def __call__(self, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return policy_reward(self.policy, params, obs, actions, variant=self.variant, scale=self.scale,
                             shift=self.shift, density=self.density)

    def of_batch(self, params, batch: Transitions) -> jax.Array:
        return self(params, batch.obs, batch.action)

    def value_ceiling(self, gamma: float) -> float:
        return value_clip(self.policy.min_std, gamma, variant=self.variant, scale=self.scale)

    def refinement_loss(self, params, batch: Transitions) -> jax.Array:
        """eq-ch5-refine on the batch: its first `n_demo` rows are demonstrations, the rest the agent's own."""
        x = refinement_log_ratio(self.policy, params, batch.obs, batch.action, density=self.density)
        return refinement_loss(x[: self.n_demo], x[self.n_demo:], self.kl_weight)

    def refine(self, state: TrainState, batch: Transitions) -> tuple[TrainState, dict]:
        if not self.refines:
            return state, {}
        loss, grads = jax.value_and_grad(
            lambda p: self.refinement_loss({"params": p, "batch_stats": state.batch_stats}, batch))(state.params)
        return state.apply_gradients(grads), {"reward_loss": loss}


class EnvironmentReward(NamedTuple):
    """The reward stored with each transition; nothing to learn."""

    learned = False

    def of_batch(self, params, batch: Transitions) -> jax.Array:
        return batch.reward

    def value_ceiling(self, gamma: float) -> float:
        return math.inf

    def refine(self, state: TrainState, batch: Transitions) -> tuple[TrainState, dict]:
        return state, {}


class SparseReward(NamedTuple):
    """-1 on every step, 0 on the step that reaches success: r = terminal - 1.

    Success is the only absorbing end in the toy tasks and the robosuite wrapper (`terminated` = success,
    time limits are `truncated`, stored as terminal=0), so `terminal` is the success flag and the reward needs
    no environment-specific key; the environment's own sparse reward (1 on success) is ignored. Returns lie in
    [-1/(1-gamma), 0]. The soft value is not clipped (`value_ceiling` inf): the KL term may add to it.
    """

    learned = False

    def of_batch(self, params, batch: Transitions) -> jax.Array:
        return batch.terminal.astype(jnp.float32) - 1.0

    def value_ceiling(self, gamma: float) -> float:
        return math.inf

    def refine(self, state: TrainState, batch: Transitions) -> tuple[TrainState, dict]:
        return state, {}


RewardSource = Union[CoherentReward, EnvironmentReward, SparseReward]

# -- critic passes -------------------------------------------------------------------------------------------------


class SeparatePasses(NamedTuple):
    """Target critic on (s', a'), online critic on (s, a): for critics without batch statistics."""

    module: nn.Module

    def __call__(self, params, critic: TrainState, obs, actions, next_obs, next_actions):
        next_out = self.module.apply(critic.target_variables, next_obs, next_actions)
        out = self.module.apply({"params": params, "batch_stats": critic.batch_stats}, obs, actions)
        return out, next_out, critic.batch_stats


class JointPass(NamedTuple):
    """Batch-normalised critics (CrossQ/XQC): the target params and the online params each run one train-mode pass
    over the joint batch [s; s'], [a; a']; the target's s' half bootstraps, the online s half is regressed, and only
    the online pass's batch statistics are kept."""

    module: nn.Module

    def __call__(self, params, critic: TrainState, obs, actions, next_obs, next_actions):
        from csil_lite.nets.critic import joint_forward

        _, next_out, _ = joint_forward(self.module, critic.target_variables, obs, actions, next_obs, next_actions)
        out, _, stats = joint_forward(self.module, {"params": params, "batch_stats": critic.batch_stats}, obs,
                                      actions, next_obs, next_actions)
        return out, next_out, stats


CriticPass = Union[SeparatePasses, JointPass]
