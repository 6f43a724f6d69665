"""The online phase's equations, one function each (chapter 5, eq-ch5-online; the gradient penalty of eq-ch5-sarsa).

They take arrays (and the critic's head), not networks, so a chapter can show each next to its equation.
Reward refinement (eq-ch5-refine) lives with the reward in `csil_lite.coherent.refinement_loss`; SARSA
pretraining (eq-ch5-sarsa) in `csil_lite.pretrain.critic.sarsa_loss`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def soft_bellman_target(reward: jax.Array, terminal: jax.Array, next_q: jax.Array, next_kl: jax.Array, *,
                        gamma: float, beta: float, ceiling: float) -> jax.Array:
    """The critic's target y of eq-ch5-online: r + gamma (1 - d) min(Q'(s', a') - beta KL(s'), ceiling).

    `next_kl` is the KL estimator's value at s' (a' ~ pi(.|s')); `ceiling` is the largest soft value the reward
    allows (eq-ch4-clip: 0 for a non-positive reward, inf for the environment's).
    """
    next_v = next_q - beta * next_kl
    next_v = jnp.minimum(next_v, ceiling)
    return reward + gamma * (1.0 - terminal) * next_v


def critic_loss(head, out: jax.Array, target: jax.Array) -> jax.Array:
    """The Bellman regression of eq-ch5-online: the head's loss of the critic output towards the (fixed) target."""
    return head.loss(out, jax.lax.stop_gradient(target))


def action_grad_penalty(q_fn: Callable[[jax.Array, jax.Array], jax.Array], obs: jax.Array,
                        actions: jax.Array) -> jax.Array:
    """sqrt(E_b ||dQ/da(s_b, a_b)||^2), the penalty of eq-ch5-sarsa: keeps Q smooth in a around the demonstrations.

    `q_fn(obs, action)` is the Q-value of one (unbatched) pair.
    """
    grads = jax.vmap(jax.grad(q_fn, argnums=1))(obs, actions)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=-1)) + 1e-12)


def actor_loss(q: jax.Array, kl: jax.Array, beta: float) -> jax.Array:
    """L_pi of eq-ch5-online: E[beta KL(pi || p0)(s) - Q(s, a)] with a ~ pi(.|s) reparameterised."""
    return beta * jnp.mean(kl) - jnp.mean(q)
