"""The coherent reward r(s, a) = alpha * (log q(a|s) - log p(a)) and what its bound implies.

With a uniform prior p on [-1, 1]^d_a (log p = -d_a log 2) and alpha = scale / d_a, the BC policy q is the
soft-optimal policy for this reward under a KL to p at temperature beta = alpha (chapter 2's proposition;
when episodes end on success, only while the reward is unshifted). The online objective regularises towards
q instead; its optimum is a sharpened q that steers back to the demonstrations (chapter 2, eq-online-step
and eq-online-equivalent), and when a success ends the episode a per-step shift adds a minimum-time bias
that grows with the shift (eq-shift-absorbing). So fine-tuning starts at q with a reward (and critic)
consistent with it, not at the optimum it moves towards.

Bounds. The reference shifts/clips with MAX_REWARD = -0.5 log(MIN_VAR) + log 2 per dimension, which drops the
tanh Jacobian and the Gaussian normaliser, so its "bound" can be exceeded (by up to ~5.4 nats per dimension near
the clip). We keep that constant for comparison (`REFERENCE_MAX_REWARD`) but bound with the strict per-dimension
maximum of the log-density implied by the policy's std floor and the clip threshold
(`distributions.max_log_prob_per_dim`), so the shifted reward really is <= 0 and the value clip is never violated.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

from csil_lite.distributions import THRESHOLD, max_log_prob_per_dim

Variant = Literal["pos", "neg"]
Density = Literal["action", "latent"]
REFERENCE_MAX_REWARD = -0.5 * math.log(1e-5) + math.log(2.0)  # ~6.4496, the reference's heuristic constant


def reward_scale(action_dim: int, scale: float = 1.0) -> float:
    """alpha_r = scale / d_a: per-dimension normalisation, distinct from the SAC/KL temperature beta."""
    if action_dim < 1:
        raise ValueError(f"action_dim must be >= 1, got {action_dim}")
    return scale / action_dim


def max_reward(min_std: float, scale: float = 1.0, threshold: float = THRESHOLD) -> float:
    """Strict upper bound of the positive coherent reward: scale * (max log q per dim + log 2)."""
    return scale * (max_log_prob_per_dim(min_std, threshold) + math.log(2.0))


def coherent_reward(
    log_q: jax.Array,
    action_dim: int,
    *,
    min_std: float,
    variant: Variant = "pos",
    scale: float = 1.0,
    shift: float | None = None,
) -> jax.Array:
    """Reward from the (reward network's) log-density of the taken action: eq-ch4-reward, eq-ch4-neg, eq-ch5-reward.

    'pos' (reference default): alpha (log q + d_a log 2). 'neg': the same minus a per-step shift, hence <= 0.
    `shift=None` subtracts the strict bound (<= 0 by construction); an explicit `shift` (in units of the unscaled
    reward, e.g. the largest reward on the demonstrations) is subtracted and the result clipped at 0.
    """
    alpha = reward_scale(action_dim, scale)
    r = alpha * (log_q + action_dim * math.log(2.0))
    if variant == "pos":
        return r
    if variant == "neg":
        if shift is None:
            return r - max_reward(min_std, scale)
        return jnp.minimum(r - scale * shift, 0.0)
    raise ValueError(f"unknown coherent reward variant {variant!r}; choose 'pos' or 'neg'")


def reward_upper_bound(min_std: float, *, variant: Variant = "pos", scale: float = 1.0) -> float:
    return max_reward(min_std, scale) if variant == "pos" else 0.0


def value_clip(min_std: float, gamma: float, *, variant: Variant = "pos", scale: float = 1.0) -> float:
    """Largest soft value a discounted sum of such rewards can reach: bound / (1 - gamma) ('neg': 0); eq-ch4-clip."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    return reward_upper_bound(min_std, variant=variant, scale=scale) / (1.0 - gamma)


def refinement_loss(r_demo: jax.Array, r_online: jax.Array, kl_weight: float = 1.0) -> jax.Array:
    """Reward refinement, eq-ch5-refine (eq-ch4-refine): raise the reward on demonstrations, pull it to zero on the
    policy's own samples.

    -E_demo[x] + E_online[exp(-max(x, -5)) - 1 + x]. The second term has the form of the non-negative KL
    estimator f(x) = x - 1 + e^{-x}, minimised at x = 0, but here it is no KL estimate (chapter 5, §5.4): x is the
    log-ratio divided by the action dimension, the online actions come from past policies rather than from q,
    and with the latent density the prior is not normalisable. What it does: pull the online samples' x towards 0
    from both sides while raising x on the demonstrations. Pass `refinement_log_ratio`, never a shifted reward
    (at x ~ -12 every sample sits in the linear branch and the reward drifts down). The clip only guards the
    exponential (below -5 its gradient is +1, as in the reference).
    """
    kl_term = jnp.exp(-jnp.maximum(r_online, -5.0)) - 1.0 + r_online
    return -jnp.mean(r_demo) + kl_weight * jnp.mean(kl_term)


def policy_log_density(policy, params, obs: jax.Array, actions: jax.Array, *,
                       density: Density = "action") -> jax.Array:
    """log q(a|s) of a policy network at (obs, actions), [batch]: in action space (tanh Jacobian included) or
    of the pre-tanh Gaussian (`density="latent"`). The coherent reward and its refinement are both functions
    of it."""
    from csil_lite.distributions import latent_log_prob, tanh_normal

    mean, std = policy.apply(params, obs)
    if density == "action":
        return tanh_normal(mean, std).log_prob(actions)
    if density == "latent":
        return latent_log_prob(mean, std, actions)
    raise ValueError(f"unknown reward density {density!r}; choose 'action' or 'latent'")


def policy_reward(
    policy,
    params,
    obs: jax.Array,
    actions: jax.Array,
    *,
    variant: Variant = "pos",
    scale: float = 1.0,
    shift: float | None = None,
    density: Density = "action",
) -> jax.Array:
    """Coherent reward of a policy network (HetStat or MLP) at (obs, actions): [batch].

    `density="action"` (the reference) scores log q(a|s) in action space, tanh Jacobian included. Where the policy
    is uncertain (large std, which HetStat gives away from the data) that density peaks near a = +-1, so the reward
    prefers saturated actions to the BC action tanh(mean) and pulls a fine-tuned actor away from BC. `"latent"`
    scores the pre-tanh Gaussian instead (a prior uniform in the latent rather than on [-1, 1]), whose maximum over
    actions is tanh(mean) at every state. The strict bound of the "action" density bounds both.
    """
    log_q = policy_log_density(policy, params, obs, actions, density=density)
    return coherent_reward(log_q, actions.shape[-1], min_std=policy.min_std, variant=variant, scale=scale,
                           shift=shift)


def refinement_log_ratio(policy, params, obs: jax.Array, actions: jax.Array, *,
                         density: Density = "action") -> jax.Array:
    """x_psi of eq-ch5-refine: the unshifted, unscaled per-dimension log-ratio that `refinement_loss` takes.

    Whatever variant, scale and shift the critic's reward uses, refinement sees this: f(x) = x - 1 + e^{-x}
    at the 'neg' variant's shifted reward (~ -12 per step) would put every online sample in the clipped, linear
    branch and push the online rewards down without bound (a drifting reward that drags Q down with it).
    """
    return log_ratio_of(policy_log_density(policy, params, obs, actions, density=density), actions.shape[-1])


def log_ratio_of(log_q: jax.Array, action_dim: int) -> jax.Array:
    """`refinement_log_ratio` from an already computed log q(a|s): the 'pos' reward at scale 1."""
    return coherent_reward(log_q, action_dim, min_std=0.0, variant="pos", scale=1.0)


def demo_reward_shift(policy, bc_params, demos, density: Density = "action") -> float:
    """The largest unscaled coherent reward of the BC policy on its own demonstrations (`Transitions`).

    Shifting by it (`reward_shift="demos"`) makes the reward <= 0 wherever the demonstrator acted, like the strict
    bound, but without the bound's ~10 extra nats per step (reached only by actions at the tanh clip), which turn
    the task into a minimum-time problem in which imitating the demonstrator is a small correction.
    """
    r = policy_reward(policy, bc_params, jax.tree.map(jnp.asarray, demos.obs), jnp.asarray(demos.action),
                      variant="pos", density=density)
    return float(jnp.max(r))
