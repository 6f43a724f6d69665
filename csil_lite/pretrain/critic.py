"""Critic pretraining: SARSA evaluation of the demonstrator under the coherent reward.

Target y = r(s, a) + gamma (1 - terminal) Qbar(s', a'_demo) with a'_demo the *next demonstration action of the same
episode*. Rows at the end of an episode that was cut by a time limit have no next action, so they are excluded;
the reference instead paired them with the next episode's first action. No policy sample and no KL term: this is
plain policy evaluation, so the online phase starts with a critic that already knows the demonstrations' value.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from csil_lite.agents.core import action_grad_penalty
from csil_lite.data.transitions import Transitions
from csil_lite.pretrain.bc import scan_in_chunks


class CriticPretrainResult(NamedTuple):
    params: dict
    target_params: dict
    losses: np.ndarray


def sarsa_rows(demos: Transitions) -> np.ndarray:
    """Indices of transitions whose SARSA target stays inside their episode (drop time-out ends)."""
    valid = ~((demos.last > 0) & (demos.terminal == 0))
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        raise ValueError("critic pretraining: no transition has a next action inside its episode")
    return idx


def sarsa_targets(critic: nn.Module, target_params, rewards: jax.Array, batch: Transitions, gamma: float) -> jax.Array:
    next_q = critic.apply(target_params, batch.next_obs, batch.next_action)
    return rewards + gamma * (1.0 - batch.terminal) * next_q


def pretrain_critic(
    critic: nn.Module,
    critic_params: dict,
    demos: Transitions,
    demo_rewards: np.ndarray,
    *,
    steps: int,
    gamma: float = 0.99,
    tau: float = 0.005,
    learning_rate: float = 1e-4,
    batch_size: int = 256,
    grad_penalty: float = 1.0,
    seed: int = 0,
    chunk: int = 500,
    progress: bool = True,
) -> CriticPretrainResult:
    """SARSA on the demonstrations with fixed per-transition rewards (the BC policy's coherent reward)."""
    if demo_rewards.shape != (demos.size,):
        raise ValueError(f"demo_rewards shape {demo_rewards.shape} != ({demos.size},)")
    rows = jnp.asarray(sarsa_rows(demos))
    data = jax.tree.map(jnp.asarray, demos)
    rewards_all = jnp.asarray(demo_rewards, jnp.float32)
    optim = optax.adam(learning_rate)

    def step(carry, key):
        params, target, opt_state = carry
        idx = rows[jax.random.randint(key, (batch_size,), 0, rows.shape[0])]
        batch = jax.tree.map(lambda x: x[idx], data)
        y = jax.lax.stop_gradient(sarsa_targets(critic, target, rewards_all[idx], batch, gamma))

        def loss_fn(p):
            bellman = jnp.mean(jnp.square(critic.apply(p, batch.obs, batch.action) - y))
            return bellman + grad_penalty * action_grad_penalty(critic, p, batch.obs, batch.action), bellman

        (_, bellman), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, optax.incremental_update(params, target, tau), opt_state), bellman

    carry, losses = scan_in_chunks(step, (critic_params, critic_params, optim.init(critic_params)),
                                   jax.random.PRNGKey(seed), steps, chunk=chunk, desc="critic SARSA",
                                   progress=progress)
    return CriticPretrainResult(carry[0], carry[1], losses)
