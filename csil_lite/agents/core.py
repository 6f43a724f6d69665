"""One KL-regularised soft actor-critic; CSIL, SAC-from-BC and BC-only are configurations of it.

State is a pytree (`AgentState`); `update(state, batch, key)` is pure and jitted: `utd` critic (+ reward) steps run
in `lax.scan` over the batch's leading axis, each followed by a Polyak step, then one actor step on the last batch.

Regulariser. The actor minimises beta * E[log pi(a|s) - log p0(a|s)] - E[Q(s, a)], and the soft value uses the
same term. For CSIL p0 is the frozen BC policy (its KL is zero at initialisation, so fine-tuning starts where BC
ended); for SAC p0 is the uniform prior, i.e. ordinary entropy regularisation.

Reward. CSIL: the coherent reward of a refinable copy of the BC policy (stop-gradient in the Bellman target),
refined by `coherent.refinement_loss` with its own SGD optimiser. SAC-from-BC: the environment's reward.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from csil_lite.coherent import policy_reward, refinement_loss, value_clip
from csil_lite.config import AgentConfig
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import tanh_normal


class AgentState(NamedTuple):
    policy: dict
    policy_opt: optax.OptState
    critic: dict
    critic_target: dict
    critic_opt: optax.OptState
    reward: dict  # refinable copy of the BC params (CSIL); unused otherwise
    reward_opt: optax.OptState
    prior: dict  # frozen BC params: the KL reference (CSIL)
    step: jax.Array


class Agent(NamedTuple):
    """Static pieces (modules, optimisers, config) closed over by the jitted functions."""

    config: AgentConfig
    policy: nn.Module
    critic: nn.Module
    policy_optim: optax.GradientTransformation
    critic_optim: optax.GradientTransformation
    reward_optim: optax.GradientTransformation
    action_dim: int


def make_agent(config: AgentConfig, policy: nn.Module, critic: nn.Module, action_dim: int) -> Agent:
    return Agent(
        config=config,
        policy=policy,
        critic=critic,
        policy_optim=optax.adam(config.actor_lr),
        critic_optim=optax.adam(config.critic_lr),
        reward_optim=optax.sgd(config.reward_lr),
        action_dim=action_dim,
    )


def init_state(agent: Agent, bc_params: dict, critic_params: dict) -> AgentState:
    """Policy, reward and prior all start from the BC params; the critic from (pretrained) `critic_params`."""
    copy = lambda t: jax.tree.map(jnp.array, t)  # noqa: E731 - distinct buffers, same values
    return AgentState(
        policy=copy(bc_params),
        policy_opt=agent.policy_optim.init(bc_params),
        critic=copy(critic_params),
        critic_target=copy(critic_params),
        critic_opt=agent.critic_optim.init(critic_params),
        reward=copy(bc_params),
        reward_opt=agent.reward_optim.init(bc_params),
        prior=copy(bc_params),
        step=jnp.zeros((), jnp.int32),
    )


def log_prior(agent: Agent, prior_params: dict, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """log p0(a|s): the frozen BC policy for CSIL, the uniform density on [-1,1]^d otherwise."""
    if agent.config.algo == "csil":
        mean, std = agent.policy.apply(prior_params, obs)
        return tanh_normal(mean, std).log_prob(actions)
    return jnp.full(actions.shape[:-1], -agent.action_dim * math.log(2.0))


def sample_with_kl(agent: Agent, policy_params, prior_params, obs: jax.Array, key: jax.Array):
    """Reparameterised a ~ pi(.|s) and the single-sample KL estimate log pi(a|s) - log p0(a|s)."""
    mean, std = agent.policy.apply(policy_params, obs)
    dist = tanh_normal(mean, std)
    actions = dist.sample(seed=key)
    return actions, dist.log_prob(actions) - log_prior(agent, prior_params, obs, actions)


def rewards(agent: Agent, reward_params, batch: Transitions) -> jax.Array:
    cfg = agent.config
    if cfg.uses_coherent_reward:
        return policy_reward(agent.policy, reward_params, batch.obs, batch.action,
                             variant=cfg.reward_variant, scale=cfg.reward_scale, shift=cfg.numeric_shift,
                             density=cfg.reward_density)
    return batch.reward


def _value_ceiling(agent: Agent) -> float:
    cfg = agent.config
    if not cfg.uses_coherent_reward:
        return math.inf
    return value_clip(agent.policy.min_std, cfg.gamma, variant=cfg.reward_variant, scale=cfg.reward_scale)


def action_grad_penalty(critic: nn.Module, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """sqrt(E_b ||dQ/da(s_b, a_b)||^2): keeps the critic smooth in the action around the demonstrations."""
    grads = jax.vmap(jax.grad(lambda o, a: critic.apply(params, o, a), argnums=1))(obs, actions)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=-1)) + 1e-12)


def critic_loss(agent: Agent, critic_params, state: AgentState, batch: Transitions, key: jax.Array):
    cfg = agent.config
    r = jax.lax.stop_gradient(rewards(agent, state.reward, batch))
    next_a, next_kl = sample_with_kl(agent, state.policy, state.prior, batch.next_obs, key)
    next_v = agent.critic.apply(state.critic_target, batch.next_obs, next_a) - cfg.beta * next_kl
    next_v = jnp.minimum(next_v, _value_ceiling(agent))
    target = jax.lax.stop_gradient(r + cfg.gamma * (1.0 - batch.terminal) * next_v)
    q = agent.critic.apply(critic_params, batch.obs, batch.action)
    bellman = jnp.mean(jnp.square(q - target))
    loss = bellman
    penalty = jnp.zeros(())
    if cfg.grad_penalty > 0 and cfg.n_demo > 0:
        demo = slice(0, cfg.n_demo)
        penalty = action_grad_penalty(agent.critic, critic_params, batch.obs[demo], batch.action[demo])
        loss = loss + cfg.grad_penalty * penalty
    return loss, {"critic_loss": bellman, "grad_penalty": penalty, "q": jnp.mean(q), "reward": jnp.mean(r),
                  "target": jnp.mean(target)}


def reward_loss(agent: Agent, reward_params, batch: Transitions):
    """Refinement on the *unshifted* log-ratio alpha (log q - log p), whatever variant the critic sees.

    The estimator x - 1 + e^{-x} is a KL estimate only when x is the log-ratio; the 'neg' variant's constant shift
    (~ -12 per step) would put every online sample in the clipped branch, where the loss is linear and pushes the
    online rewards down without bound (a drifting reward that drags Q down with it).
    """
    cfg = agent.config
    # scale=1: `reward_scale` only rescales what the critic sees; the estimator needs the log-ratio itself.
    r = policy_reward(agent.policy, reward_params, batch.obs, batch.action, variant="pos", scale=1.0,
                      density=cfg.reward_density)
    return refinement_loss(r[: cfg.n_demo], r[cfg.n_demo:], cfg.refine_kl_weight)


def actor_loss(agent: Agent, policy_params, state: AgentState, batch: Transitions, key: jax.Array):
    actions, kl = sample_with_kl(agent, policy_params, state.prior, batch.obs, key)
    q = agent.critic.apply(state.critic, batch.obs, actions)
    loss = agent.config.beta * jnp.mean(kl) - jnp.mean(q)
    return loss, {"actor_loss": loss, "kl": jnp.mean(kl)}


def critic_step(agent: Agent, state: AgentState, batch: Transitions, key: jax.Array):
    """One critic (+ reward refinement) step and a Polyak update of the target."""
    cfg = agent.config
    (_, metrics), grads = jax.value_and_grad(
        lambda p: critic_loss(agent, p, state, batch, key), has_aux=True)(state.critic)
    updates, critic_opt = agent.critic_optim.update(grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, updates)
    target = optax.incremental_update(critic, state.critic_target, cfg.tau)
    reward, reward_opt = state.reward, state.reward_opt
    if cfg.uses_coherent_reward and cfg.refine_reward:
        r_loss, r_grads = jax.value_and_grad(lambda p: reward_loss(agent, p, batch))(state.reward)
        r_updates, reward_opt = agent.reward_optim.update(r_grads, state.reward_opt, state.reward)
        reward = optax.apply_updates(state.reward, r_updates)
        metrics = {**metrics, "reward_loss": r_loss}
    return state._replace(critic=critic, critic_target=target, critic_opt=critic_opt,
                          reward=reward, reward_opt=reward_opt), metrics


def make_update(agent: Agent) -> Callable:
    """jit(update(state, batch[utd, B], key, train_actor=True) -> (state, metrics)).

    `train_actor=False` (static) runs only the critic and reward steps: the warm-up in which the critic learns the
    value of the initial policy's own rollouts before the actor starts following its action-gradient.
    """

    def update(state: AgentState, batch: Transitions, key: jax.Array, train_actor: bool = True):
        if batch.obs.ndim < 3:
            raise ValueError(f"update expects a batch with a leading UTD axis [utd, B, ...], got obs {batch.obs.shape}")
        keys = jax.random.split(key, batch.obs.shape[0] + 1)

        def body(s, xs):
            b, k = xs
            return critic_step(agent, s, b, k)

        state, critic_metrics = jax.lax.scan(body, state, (batch, keys[1:]))
        critic_metrics = jax.tree.map(jnp.mean, critic_metrics)
        if not train_actor:
            return state, critic_metrics
        last = jax.tree.map(lambda x: x[-1], batch)
        (_, a_metrics), grads = jax.value_and_grad(
            lambda p: actor_loss(agent, p, state, last, keys[0]), has_aux=True)(state.policy)
        updates, policy_opt = agent.policy_optim.update(grads, state.policy_opt, state.policy)
        state = state._replace(policy=optax.apply_updates(state.policy, updates), policy_opt=policy_opt,
                               step=state.step + 1)
        return state, {**critic_metrics, **a_metrics}

    return jax.jit(update, static_argnames="train_actor")


def make_act(agent: Agent) -> Callable:
    """jit(act(policy_params, obs, key, deterministic)): a sample for exploration, tanh(mean) for evaluation."""

    def act(policy_params, obs: jax.Array, key: jax.Array, deterministic: bool):
        mean, std = agent.policy.apply(policy_params, obs)
        if deterministic:
            return jnp.tanh(mean)
        return tanh_normal(mean, std).sample(seed=key)

    return jax.jit(act, static_argnums=3)
