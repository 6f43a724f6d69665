"""The agent's components, built once from an `AgentConfig` by `assembly.make_agent`; the update only calls them.

- prior: the KL's reference policy p0(a|s): `BCPrior` (the frozen BC policy) or `UniformPrior` (on [-1, 1]^d,
  which turns the KL into an entropy bonus up to a constant);
- KL estimator: `MonteCarloKL` (log pi(a|s) - log p0(a|s) at the sampled action) or `ExactKL` (the closed-form
  KL of the latent Gaussians, which needs a Gaussian prior);
- reward source: `CoherentReward` (the coherent reward of a refinable copy of the BC policy, refined on every
  critic step), `EnvironmentReward` (the reward stored with the transitions) or `SparseReward` (-1 per step,
  0 on the absorbing success step: the minimum-time reward of SACfD / XQC+OD);
- return normalisation: `NoNormalisation` (the critic sees the raw reward) or `ReturnNormalisation` (XQC's:
  divided by the running standard deviation of the discounted return);
- refinement schedule: `RefinePerCriticStep` (the reward refines in every critic step, as the reference code's
  update loops the critic and reward gradients together) or `RefinePerUpdate` (once per update, after its
  critic steps).

Each component is an immutable NamedTuple of static settings, so it can be closed over by jitted functions.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.agents.state import TrainState
from csil_lite.coherent import (
    coherent_reward,
    demo_reward_shift,
    log_ratio_of,
    policy_log_density,
    policy_reward,
    refinement_loss,
    value_clip,
)
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import latent_kl, tanh_normal

# -- priors --------------------------------------------------------------------------------------------------------


class BCPrior(NamedTuple):
    """The frozen BC policy (its params live in `AgentState.prior`).

    `latent(params, obs)` is its latent Gaussian (mean, std) at `obs`; because the prior never changes, the
    update evaluates it once for all the observations it needs (every critic step's s' and the actor step's s)
    and hands the latents to `log_prob_at` / the KL estimators.
    """

    policy: nn.Module

    def latent(self, params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.policy.apply(params, obs)

    def log_prob_at(self, latent: tuple[jax.Array, jax.Array], actions: jax.Array) -> jax.Array:
        return tanh_normal(*latent).log_prob(actions)

    def log_prob(self, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return self.log_prob_at(self.latent(params, obs), actions)


class UniformPrior(NamedTuple):
    """The uniform density on [-1, 1]^d: log p0 = -d log 2 everywhere (its params are ignored; no latent)."""

    action_dim: int

    def latent(self, params, obs: jax.Array) -> None:
        return None

    def log_prob_at(self, latent: None, actions: jax.Array) -> jax.Array:
        return jnp.full(actions.shape[:-1], -self.action_dim * math.log(2.0))

    def log_prob(self, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return self.log_prob_at(None, actions)


Prior = Union[BCPrior, UniformPrior]

# -- KL estimators -------------------------------------------------------------------------------------------------
# Called as kl(mean, std, actions, prior_latent): the policy's latent Gaussian at s, the sampled actions there
# and the prior's `latent` at the same s.


class MonteCarloKL(NamedTuple):
    """The single-sample estimate log pi(a|s) - log p0(a|s) at the reparameterised sample a ~ pi(.|s)."""

    prior: Prior

    def __call__(self, mean: jax.Array, std: jax.Array, actions: jax.Array, prior_latent) -> jax.Array:
        return tanh_normal(mean, std).log_prob(actions) - self.prior.log_prob_at(prior_latent, actions)


class ExactKL(NamedTuple):
    """KL(pi(.|s) || p0(.|s)) in closed form: that of the latent Gaussians (`distributions.latent_kl`)."""

    prior: BCPrior

    def __call__(self, mean: jax.Array, std: jax.Array, actions: jax.Array, prior_latent) -> jax.Array:
        return latent_kl(mean, std, *prior_latent)


KLEstimator = Union[MonteCarloKL, ExactKL]

# -- reward sources ------------------------------------------------------------------------------------------------


class CoherentReward(NamedTuple):
    """r(s, a) of a reward network (a copy of the BC policy) with the run's variant, scale, shift and density.

    `__call__` is *the* reward function: the critic's targets, the SARSA pretraining, the loop's evaluations and
    the chapters all call it. `reward_and_refine` gives the reward and one step of refinement on a mixed batch
    whose first `n_demo` rows are demonstrations.
    """

    policy: nn.Module
    variant: str
    scale: float
    shift: float | None
    density: str
    refines: bool
    kl_weight: float
    n_demo: int
    shift_from_demos: bool = False  # `resolve` sets `shift` to the largest reward on the demonstrations

    learned = True  # the reward depends on params (evaluations log its correlation with the task's reward)

    def resolve(self, bc_params, demos: Transitions) -> "CoherentReward":
        """This reward with what it computes from the data: the shift by the largest (unscaled) reward of the
        BC policy on its demonstrations, if asked for (`coherent.demo_reward_shift`)."""
        if not self.shift_from_demos:
            return self
        shift = demo_reward_shift(self.policy, bc_params, demos, self.density)
        return self._replace(shift=shift, shift_from_demos=False)

    def setup(self) -> dict:
        """What `resolve` computed, as plain data (stored with a run; `with_setup` restores it)."""
        return {"shift": self.shift}

    def with_setup(self, values: dict) -> "CoherentReward":
        return self._replace(shift=values["shift"], shift_from_demos=False)

    def __call__(self, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return policy_reward(self.policy, params, obs, actions, variant=self.variant, scale=self.scale,
                             shift=self.shift, density=self.density)

    def of_batch(self, params, batch: Transitions) -> jax.Array:
        return self(params, batch.obs, batch.action)

    def value_ceiling(self, gamma: float) -> float:
        return value_clip(self.policy.min_std, gamma, variant=self.variant, scale=self.scale)

    def value_floor(self, params, demos: Transitions, demo_rewards: jax.Array, gamma: float,
                    key: jax.Array) -> float:
        """The lowest return the critic's support should hold: the lowest reward of the demonstrations
        (`demo_rewards`, this reward on `demos`) and of one action of the BC policy (`params`) at each of their
        states, over an infinite horizon, r_min / (1 - gamma).

        Online the agent acts with that policy, whose samples score below the demonstrations (rewards of -2 to
        -6 per step on the toy task, with episodes that time out), so the demonstrations' own returns
        underestimate how low a value gets. States far from the demonstrations can still score lower; the
        categorical head logs the clipped fraction. Book: eq-ch6-floor.
        """
        mean, std = self.policy.apply(params, demos.obs)
        own = tanh_normal(mean, std).sample(seed=key)
        low = jnp.minimum(jnp.min(demo_rewards), jnp.min(self(params, demos.obs, own)))
        return float(jnp.minimum(low, 0.0)) / (1.0 - gamma)

    def refinement_loss(self, params, batch: Transitions) -> jax.Array:
        """eq-ch5-refine on the batch: its first `n_demo` rows are demonstrations, the rest the agent's own."""
        return self._refinement_and_reward(params, batch)[0]

    def _refinement_and_reward(self, params, batch: Transitions) -> tuple[jax.Array, jax.Array]:
        """(refinement loss, critic reward) from one forward pass: both are functions of log q(a|s)."""
        log_q = policy_log_density(self.policy, params, batch.obs, batch.action, density=self.density)
        x = log_ratio_of(log_q, batch.action.shape[-1])
        reward = coherent_reward(log_q, batch.action.shape[-1], min_std=self.policy.min_std,
                                 variant=self.variant, scale=self.scale, shift=self.shift)
        return refinement_loss(x[: self.n_demo], x[self.n_demo:], self.kl_weight), reward

    def reward_and_refine(self, state: TrainState, batch: Transitions) -> tuple[jax.Array, TrainState, dict]:
        """The critic's reward on the batch at the current params, and one refinement step from those params.

        One forward of the reward network serves both (the reward is the loss's auxiliary output, so it
        carries no gradient); without refinement, just the reward.
        """
        if not self.refines:
            return self.of_batch(state.variables, batch), state, {}
        (loss, reward), grads = jax.value_and_grad(
            lambda p: self._refinement_and_reward({"params": p, "batch_stats": state.batch_stats}, batch),
            has_aux=True)(state.params)
        return reward, state.apply_gradients(grads), {"reward_loss": loss}


def _no_ceiling(self, gamma: float) -> float:
    """A task reward bounds no soft value: the target is never clipped."""
    return math.inf


def _fixed_floor(self, params, demos: Transitions, demo_rewards: jax.Array, gamma: float, key: jax.Array) -> float:
    """A fixed reward's lowest return over an infinite horizon: min(0, lowest reward of the demos) / (1 - gamma)."""
    return float(jnp.minimum(jnp.min(demo_rewards), 0.0)) / (1.0 - gamma)


def _fixed_reward(self, state: TrainState, batch: Transitions) -> tuple[jax.Array, TrainState, dict]:
    """A reward with nothing to learn: the batch's reward, the reward state unchanged, no metrics."""
    return self.of_batch(state.variables, batch), state, {}


def _nothing_to_resolve(self, bc_params, demos: Transitions):
    return self


def _no_setup(self) -> dict:
    return {}


def _same(self, values: dict):
    return self


class EnvironmentReward(NamedTuple):
    """The reward stored with each transition; nothing to learn."""

    learned = False

    def of_batch(self, params, batch: Transitions) -> jax.Array:
        return batch.reward

    value_ceiling = _no_ceiling
    value_floor = _fixed_floor
    reward_and_refine = _fixed_reward
    resolve, setup, with_setup = _nothing_to_resolve, _no_setup, _same


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

    def value_floor(self, params, demos: Transitions, demo_rewards: jax.Array, gamma: float,
                    key: jax.Array) -> float:
        """-1 on every step forever: -1 / (1 - gamma), exactly (whatever the demonstrations)."""
        return -1.0 / (1.0 - gamma)

    value_ceiling = _no_ceiling
    reward_and_refine = _fixed_reward
    resolve, setup, with_setup = _nothing_to_resolve, _no_setup, _same


RewardSource = Union[CoherentReward, EnvironmentReward, SparseReward]


# -- refinement schedules ------------------------------------------------------------------------------------------


class RefinePerCriticStep(NamedTuple):
    """The reward refines once in every critic step, from the params that step's reward came from: `utd`
    refinements per update (the reference CSIL code). Book: eq-ch6-utd."""

    def in_critic_step(self, reward: RewardSource, state: TrainState, batch: Transitions):
        """(the critic's reward on `batch`, the reward state after this step, metrics)."""
        return reward.reward_and_refine(state, batch)

    def after_critic_steps(self, reward: RewardSource, state: TrainState, batch: Transitions):
        """(the reward state after the update's critic steps, metrics): nothing more to do."""
        return state, {}


class RefinePerUpdate(NamedTuple):
    """The reward refines once per update (per env step), on the update's last batch after its critic steps,
    which all see the reward at the params the update started from. Book: eq-ch6-utd."""

    def in_critic_step(self, reward: RewardSource, state: TrainState, batch: Transitions):
        return reward.of_batch(state.variables, batch), state, {}

    def after_critic_steps(self, reward: RewardSource, state: TrainState, batch: Transitions):
        _, state, metrics = reward.reward_and_refine(state, batch)
        return state, metrics


RefinementSchedule = Union[RefinePerCriticStep, RefinePerUpdate]


# -- return normalisation ------------------------------------------------------------------------------------------


class ReturnStats(NamedTuple):
    """Welford's running moments of the discounted-return stream (plain floats: stored with a run and in the
    loop's checkpoints) and the stream's current return `g`."""

    count: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    g: float = 0.0


class NoNormalisation(NamedTuple):
    """The critic sees the reward as it is: scale 1."""

    active = False

    def resolve(self, rewards, last) -> "NoNormalisation":
        return self

    def setup(self) -> dict:
        return {}

    def with_setup(self, values: dict) -> "NoNormalisation":
        return self

    def start(self) -> ReturnStats:
        return ReturnStats()

    def scale(self, stats: ReturnStats) -> float:
        return 1.0


class ReturnNormalisation(NamedTuple):
    """XQC's reward normalisation: rewards divided by sqrt(Var(G)) + 1e-8, G the running discounted return
    G <- r + gamma G over the stream of transitions, reset to 0 after an episode's last step; no mean is
    subtracted, so a reward's sign is kept. `resolve` starts the moments from the demonstrations' reward stream
    (what SARSA pretraining regresses on, so the pretrained critic is in the same units); the loop feeds every
    env step's reward under the current reward network to `observe`. Book: eq-ch6-norm."""

    gamma: float
    initial: ReturnStats = ReturnStats()

    active = True

    def observe(self, stats: ReturnStats, reward: float, last: bool) -> ReturnStats:
        """One step of the stream: G's new value enters the moments (Welford), then G resets if the episode ended.
        Book: eq-ch6-norm."""
        g = float(reward) + self.gamma * stats.g
        count = stats.count + 1.0
        delta = g - stats.mean
        mean = stats.mean + delta / count
        m2 = stats.m2 + delta * (g - mean)
        return ReturnStats(count, mean, m2, 0.0 if last else g)

    def resolve(self, rewards, last) -> "ReturnNormalisation":
        """The moments of the demonstrations' return stream (rewards and episode ends in stream order)."""
        stats = ReturnStats()
        for r, end in zip(np.asarray(rewards, np.float64), np.asarray(last, bool)):
            stats = self.observe(stats, r, bool(end))
        return self._replace(initial=stats)

    def setup(self) -> dict:
        return {"initial": list(self.initial)}

    def with_setup(self, values: dict) -> "ReturnNormalisation":
        return self._replace(initial=ReturnStats(*values["initial"])) if values else self

    def start(self) -> ReturnStats:
        return self.initial

    def scale(self, stats: ReturnStats) -> float:
        """1 / (sqrt(Var(G)) + 1e-8): what the critic's rewards are multiplied by (1 before any data)."""
        if stats.count < 2:
            return 1.0
        return 1.0 / (math.sqrt(stats.m2 / stats.count) + 1e-8)


Normaliser = Union[NoNormalisation, ReturnNormalisation]
