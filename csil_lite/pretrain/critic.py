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

from csil_lite.agents.losses import action_grad_penalty
from csil_lite.agents.state import TrainState
from csil_lite.data.transitions import Transitions
from csil_lite.nets.critic import ScalarHead, joint_forward
from csil_lite.nets.heads import discounted_returns
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


def sarsa_targets(critic: nn.Module, target_params, rewards: jax.Array, batch: Transitions, gamma: float,
                  head=ScalarHead()) -> jax.Array:
    """y = r + gamma (1 - d) Qbar(s', a'_demo) of eq-ch5-sarsa (no policy sample, no KL: policy evaluation)."""
    return head.sarsa_target(rewards, batch.terminal, critic.apply(target_params, batch.next_obs, batch.next_action),
                             gamma)


def sarsa_penalty(critic: nn.Module, variables, batch: Transitions, head=ScalarHead()) -> jax.Array:
    """The action-gradient penalty of eq-ch5-sarsa in eval mode (summed over an ensemble's critics)."""
    value = lambda o, a: head.value(critic.apply(variables, o, a))  # noqa: E731
    shape = jax.eval_shape(value, batch.obs[0], batch.action[0]).shape
    if shape == ():
        return action_grad_penalty(value, batch.obs, batch.action)
    return sum(action_grad_penalty(lambda o, a, e=e: value(o, a)[e], batch.obs, batch.action) for e in range(shape[0]))


def sarsa_loss(critic: nn.Module, variables, batch: Transitions, target: jax.Array, grad_penalty: float,
               head=ScalarHead()) -> tuple[jax.Array, jax.Array]:
    """eq-ch5-sarsa: the head's Bellman loss towards the fixed SARSA target plus the action-gradient penalty.

    Returns (loss, the Bellman part alone).
    """
    bellman = head.loss(critic.apply(variables, batch.obs, batch.action), jax.lax.stop_gradient(target))
    return bellman + grad_penalty * sarsa_penalty(critic, variables, batch, head), bellman


def joint_sarsa_loss(critic: nn.Module, params, state: TrainState, batch: Transitions, rewards: jax.Array,
                     gamma: float, grad_penalty: float, head=ScalarHead()):
    """eq-ch5-sarsa for a batch-normalised critic, as the online update does it (`components.JointPass`): the
    target params and the online params each run one train-mode pass over [s; s'], [a; a'_demo]; the target's
    s' half gives the SARSA target, the online s half is regressed, and the online pass's batch statistics are
    returned to be kept. The gradient penalty is taken in eval mode (running statistics), as online.

    Returns (loss, (the Bellman part alone, new batch_stats)).
    """
    _, next_out, _ = joint_forward(critic, state.target_variables, batch.obs, batch.action, batch.next_obs,
                                   batch.next_action)
    target = head.sarsa_target(rewards, batch.terminal, next_out, gamma)
    out, _, stats = joint_forward(critic, {"params": params, "batch_stats": state.batch_stats}, batch.obs,
                                  batch.action, batch.next_obs, batch.next_action)
    bellman = head.loss(out, jax.lax.stop_gradient(target))
    penalty = sarsa_penalty(critic, {"params": params, "batch_stats": state.batch_stats}, batch, head)
    return bellman + grad_penalty * penalty, (bellman, stats)


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
    head=ScalarHead(),
    project=None,
) -> CriticPretrainResult:
    """SARSA on the demonstrations with fixed per-transition rewards (the BC policy's coherent reward).

    `project`: applied to the params at initialisation and after every step (weight normalisation), if given.
    A critic with batch statistics (critic_norm 'batch' / 'batch_weight') is trained with the online update's
    joint train-mode pass (`joint_sarsa_loss`) and its batch statistics are carried in the `TrainState`.
    """
    joint = bool(jax.tree.leaves(critic_params.get("batch_stats", {})))
    if demo_rewards.shape != (demos.size,):
        raise ValueError(f"demo_rewards shape {demo_rewards.shape} != ({demos.size},)")
    rows = jnp.asarray(sarsa_rows(demos))
    data = jax.tree.map(jnp.asarray, demos)
    rewards_all = jnp.asarray(demo_rewards, jnp.float32)

    def step(state: TrainState, key):
        idx = rows[jax.random.randint(key, (batch_size,), 0, rows.shape[0])]
        batch = jax.tree.map(lambda x: x[idx], data)
        if joint:
            (_, (bellman, stats)), grads = jax.value_and_grad(
                lambda p: joint_sarsa_loss(critic, p, state, batch, rewards_all[idx], gamma, grad_penalty, head),
                has_aux=True)(state.params)
            state = state.apply_gradients(grads, batch_stats=stats)
        else:
            y = sarsa_targets(critic, state.target_variables, rewards_all[idx], batch, gamma, head)
            (_, bellman), grads = jax.value_and_grad(
                lambda p: sarsa_loss(critic, {"params": p, "batch_stats": state.batch_stats}, batch, y,
                                     grad_penalty, head), has_aux=True)(state.params)
            state = state.apply_gradients(grads)
        if project is not None:
            state = state.replace(params=project(state.params))
        return state.update_target(tau), bellman

    if project is not None:
        critic_params = {**critic_params, "params": project(critic_params["params"])}
    state = TrainState.create(critic_params, optax.adam(learning_rate), target=True)
    state, losses = scan_in_chunks(step, state, jax.random.PRNGKey(seed), steps, chunk=chunk, desc="critic SARSA",
                                   progress=progress)
    return CriticPretrainResult(state.variables, state.target_variables, losses)


class SarsaFit(NamedTuple):
    """How well a pretrained critic evaluates the demonstrator: its values against the Monte-Carlo returns."""

    q_mean: float  # mean Q(s, a_E) over the SARSA rows (ensemble minimum)
    return_mean: float  # mean discounted return from those rows to their episode's end, under the same reward
    rel_error: float  # |q_mean - return_mean| / mean |return|
    corr: float  # correlation of Q and the return across the rows


def sarsa_fit(critic: nn.Module, head, variables, demos: Transitions, demo_rewards: np.ndarray,
              gamma: float) -> SarsaFit:
    """Compare Q(s, a_E) with the discounted returns of the demonstrations under the rewards SARSA was given.

    SARSA (eq-ch5-sarsa) evaluates the demonstrator, so once it has converged its Q at each demonstrated
    (s, a) is that transition's discounted return. Only the rows SARSA trains on (`sarsa_rows`: episodes that
    end in a terminal state or continue) are compared: a time-limit end has a value beyond its last reward.
    """
    rows = sarsa_rows(demos)
    returns = discounted_returns(np.asarray(demo_rewards, np.float64), demos.last, gamma)[rows]
    q = np.asarray(head.value(critic.apply(variables, jnp.asarray(demos.obs[rows]), jnp.asarray(demos.action[rows]))))
    q = q.min(axis=0) if q.ndim == 2 else q
    rel = abs(float(q.mean()) - float(returns.mean())) / max(float(np.abs(returns).mean()), 1e-8)
    return SarsaFit(float(q.mean()), float(returns.mean()), rel, float(np.corrcoef(q, returns)[0, 1]))
