"""Critic pretraining: SARSA evaluation of the demonstrator under the coherent reward.

Target y = r(s, a) + gamma (1 - terminal) Qbar(s', a'_demo) with a'_demo the *next demonstration action of the same
episode*. Rows at the end of an episode that was cut by a time limit have no next action, so they are excluded;
the reference instead paired them with the next episode's first action. No policy sample and no KL term: this is
plain policy evaluation, so the online phase starts with a critic that already knows the demonstrations' value.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from csil_lite import obs as obs_lib
from csil_lite.agents.critic import Critic
from csil_lite.agents.state import TrainState
from csil_lite.data.transitions import Transitions
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


def sarsa_loss(critic: Critic, params, state: TrainState, batch: Transitions, rewards: jax.Array, gamma: float,
               grad_penalty: float):
    """eq-ch5-sarsa: the head's Bellman loss towards y = r + gamma (1 - d) Qbar(s', a'_demo) (no policy sample, no
    KL: policy evaluation) plus the action-gradient penalty.

    The passes are the critic's own, as online (`Critic.forward`): a batch-normalised critic runs one train-mode
    pass over [s; s'], [a; a'_demo] per params set and keeps the online pass's batch statistics. The penalty is
    taken in eval mode (running statistics), as online.

    Returns (loss, (the Bellman part alone, new batch_stats)).
    """
    out, next_out, stats = critic.forward(params, state, batch.obs, batch.action, batch.next_obs, batch.next_action)
    target = critic.head.sarsa_target(rewards, batch.terminal, next_out, gamma)
    bellman = critic.head.loss(out, jax.lax.stop_gradient(target))
    penalty = critic.penalty({"params": params, "batch_stats": state.batch_stats}, batch.obs, batch.action)
    return bellman + grad_penalty * penalty, (bellman, stats)


def make_sarsa_step(critic: Critic, *, gamma: float, tau: float, batch_size: int, grad_penalty: float):
    """One SARSA step on `batch_size` rows drawn from `rows` of the demonstrations (`data` = (demonstrations,
    rows, their rewards)), then the projection and the Polyak step."""

    def step(state: TrainState, key, data):
        data, rows, rewards = data
        idx = rows[jax.random.randint(key, (batch_size,), 0, rows.shape[0])]
        batch = jax.tree.map(lambda x: x[idx], data)
        (_, (bellman, stats)), grads = jax.value_and_grad(
            lambda p: sarsa_loss(critic, p, state, batch, rewards[idx], gamma, grad_penalty), has_aux=True)(
            state.params)
        state = state.apply_gradients(grads, batch_stats=stats)
        return state.replace(params=critic.project(state.params)).update_target(tau), bellman

    return step


def pretrain_critic(
    critic: Critic,
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
    checkpoint_dir=None,
    optimiser=None,
) -> CriticPretrainResult:
    """SARSA on the demonstrations with fixed per-transition rewards (the BC policy's coherent reward).

    `optimiser`: wraps the Adam step (e.g. `nets.encoders.FrozenAfterBC.optimiser`, which keeps a shared image
    encoder fixed); None: plain Adam.
    The critic component brings its passes, head, penalty and projection (weight normalisation, applied to the
    params at initialisation and after every step). `checkpoint_dir`: save the training state after every chunk
    there and resume from it (`pretrain.bc.scan_in_chunks`).
    """
    demo_rewards = np.asarray(demo_rewards)
    if demo_rewards.shape != (demos.size,):
        raise ValueError(f"demo_rewards shape {demo_rewards.shape} != ({demos.size},)")
    rows = jnp.asarray(sarsa_rows(demos))
    data = jax.tree.map(jnp.asarray, demos)
    step = make_sarsa_step(critic, gamma=gamma, tau=tau, batch_size=batch_size, grad_penalty=grad_penalty)
    critic_params = {**critic_params, "params": critic.project(critic_params["params"])}
    tx = optax.adam(learning_rate)
    state = TrainState.create(critic_params, tx if optimiser is None else optimiser(tx), target=True)
    state, losses = scan_in_chunks(step, state, jax.random.PRNGKey(seed), steps, chunk=chunk, desc="critic SARSA",
                                   progress=progress, data=(data, rows, jnp.asarray(demo_rewards, jnp.float32)),
                                   unrolled=obs_lib.unroll_loops(data.obs),
                                   checkpoint_dir=checkpoint_dir)
    return CriticPretrainResult(state.variables, state.target_variables, losses)


class SarsaFit(NamedTuple):
    """How well a pretrained critic evaluates the demonstrator: its values against the Monte-Carlo returns."""

    q_mean: float  # mean Q(s, a_E) over the SARSA rows (ensemble minimum)
    return_mean: float  # mean discounted return from those rows to their episode's end, under the same reward
    rel_error: float  # |q_mean - return_mean| / mean |return|
    corr: float  # correlation of Q and the return across the rows


def sarsa_fit(critic: Critic, variables, demos: Transitions, demo_rewards: np.ndarray, gamma: float) -> SarsaFit:
    """Compare Q(s, a_E) with the discounted returns of the demonstrations under the rewards SARSA was given.

    SARSA (eq-ch5-sarsa) evaluates the demonstrator, so once it has converged its Q at each demonstrated
    (s, a) is that transition's discounted return. Only the rows SARSA trains on (`sarsa_rows`: episodes that
    end in a terminal state or continue) are compared: a time-limit end has a value beyond its last reward.
    """
    rows = sarsa_rows(demos)
    returns = discounted_returns(np.asarray(demo_rewards, np.float64), demos.last, gamma)[rows]
    q = np.asarray(critic.value(variables, jax.tree.map(jnp.asarray, obs_lib.take(demos.obs, rows)),
                                jnp.asarray(demos.action[rows])))
    rel = abs(float(q.mean()) - float(returns.mean())) / max(float(np.abs(returns).mean()), 1e-8)
    return SarsaFit(float(q.mean()), float(returns.mean()), rel, float(np.corrcoef(q, returns)[0, 1]))
