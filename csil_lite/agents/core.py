"""One KL-regularised soft actor-critic; CSIL, SAC-from-BC and BC-only are configurations of it.

State is a pytree (`AgentState`, one `TrainState` per network); `update(state, batch, key)` is pure and jitted:
`utd` critic (+ reward refinement) steps run in `lax.scan` over the batch's leading axis, each followed by a Polyak
step, then one actor step on the last batch.

What differs between algorithms is resolved once, in `make_agent`, into components (`components.py`): the
KL's prior, the KL estimator, the reward source and the critic (module + head). The update calls them and never
looks at which algorithm it runs. The equations are in `losses.py`.

Regulariser. The actor minimises beta * E[KL(pi || p0)(s)] - E[Q(s, a)], and the soft value uses the same term.
With the BC prior q the KL is zero at initialisation, so fine-tuning starts at BC with a reward and a critic
consistent with it; but BC is not this objective's optimum: a KL to q at beta with reward scale alpha equals a KL
to the uniform prior at beta with scale alpha + beta, whose optimum is a sharpened q (book chapter 2, §2.5,
eq-online-equivalent), and with success-ending episodes the reward shift adds a minimum-time bias
(eq-shift-absorbing). With the uniform prior the KL is an entropy bonus (SAC).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from csil_lite.agents.components import (
    BCPrior,
    CoherentReward,
    CriticPass,
    EnvironmentReward,
    ExactKL,
    JointPass,
    KLEstimator,
    MonteCarloKL,
    Prior,
    RewardSource,
    SeparatePasses,
    SparseReward,
    UniformPrior,
)
from csil_lite.agents.losses import action_grad_penalty, actor_loss, critic_loss
from csil_lite.agents.state import AgentState, TrainState
from csil_lite.config import AgentConfig
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import tanh_normal
from csil_lite.nets.critic import Critic, unit_fan_in
from csil_lite.nets.heads import CategoricalHead, ScalarHead


class Agent(NamedTuple):
    """Static pieces (modules, components, optimisers, numbers) closed over by the jitted functions."""

    config: AgentConfig
    policy: nn.Module
    critic: nn.Module
    head: ScalarHead | CategoricalHead
    critic_pass: CriticPass
    critic_project: Callable  # applied to the critic params at init and after every step (weight norm, or none)
    critic_size: int
    critic_member: nn.Module | None  # one member's module, for an ensemble built by `make_critic`
    prior: Prior
    kl: KLEstimator
    reward: RewardSource
    policy_optim: optax.GradientTransformation
    critic_optim: optax.GradientTransformation
    reward_optim: optax.GradientTransformation
    action_dim: int


def _identity(params):
    return params


def critic_optimiser(lr: float, weight_decay: float, weight_norm: bool) -> optax.GradientTransformation:
    """Adam; with `weight_decay` > 0, AdamW whose decay acts on what weight normalisation leaves free.

    Batch norm makes the loss invariant to the scale of the kernel before it and the projection (`unit_fan_in`)
    fixes that scale, but the batch-norm scales and biases and the output bias stay free. Under Adam each step
    moves a param by about the learning rate whatever its gradient, so a param the loss keeps pushing one way
    grows linearly (`benchmarks/soak_bn_wn.py`). Decoupled decay, theta <- theta - lr (u + lambda theta), keeps
    |theta_i| below max(|theta_i(0)|, max|u| / lambda), u being Adam's normalised step. Without weight norm
    every param is decayed (plain AdamW). Book: eq-ch6-decay.
    """
    if weight_decay == 0:
        return optax.adam(lr)

    def free(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: not (weight_norm and getattr(path[-1], "key", None) == "kernel"), params)

    return optax.adamw(lr, weight_decay=weight_decay, mask=free)


def make_agent(config: AgentConfig, policy: nn.Module, critic: nn.Module | Critic, action_dim: int,
               head: ScalarHead | CategoricalHead | None = None) -> Agent:
    """Resolve the config's components once; `config.reward_shift` must already be a number or 'bound'.

    `critic`: a `nets.critic.Critic` component (module, head, batch/weight norm, ensemble size), or a bare module
    read by `head` (default: scalar).
    """
    if not isinstance(critic, Critic):
        critic = Critic(critic, ScalarHead() if head is None else head)
    prior = BCPrior(policy) if config.prior == "bc" else UniformPrior(action_dim)
    kl = ExactKL(prior) if config.kl == "exact" else MonteCarloKL(prior)
    if config.reward == "coherent":
        reward = CoherentReward(policy, variant=config.reward_variant, scale=config.reward_scale,
                                shift=config.numeric_shift, density=config.reward_density,
                                refines=config.refine_reward, kl_weight=config.refine_kl_weight, n_demo=config.n_demo)
    elif config.reward == "sparse":
        reward = SparseReward()
    else:
        reward = EnvironmentReward()
    return Agent(
        config=config,
        policy=policy,
        critic=critic.module,
        head=critic.head,
        critic_pass=JointPass(critic.module) if critic.batch_norm else SeparatePasses(critic.module),
        critic_project=unit_fan_in if critic.weight_norm else _identity,
        critic_size=critic.size,
        critic_member=critic.member,
        prior=prior,
        kl=kl,
        reward=reward,
        policy_optim=optax.adam(config.actor_lr),
        critic_optim=critic_optimiser(config.critic_lr, config.critic_weight_decay, critic.weight_norm),
        reward_optim=optax.sgd(config.reward_lr),
        action_dim=action_dim,
    )


def init_state(agent: Agent, bc_params: dict, critic_params: dict) -> AgentState:
    """Actor, reward network and prior start from the BC variables; the critic (and its target) from
    `critic_params` (pretrained or not). Without a learned reward the reward network is empty."""
    reward_vars = bc_params if agent.reward.learned else {"params": {}}
    critic_vars = {**critic_params, "params": agent.critic_project(critic_params["params"])}  # before the target copy
    return AgentState(
        actor=TrainState.create(bc_params, agent.policy_optim),
        critic=TrainState.create(critic_vars, agent.critic_optim, target=True),
        reward=TrainState.create(reward_vars, agent.reward_optim),
        prior=jax.tree.map(jnp.array, bc_params),
        step=jnp.zeros((), jnp.int32),
    )


class Latents(NamedTuple):
    """The latent Gaussians a critic step reads at s' from networks it does not train: the actor's (fixed
    until the actor step) and the frozen prior's (None for the uniform prior)."""

    policy: tuple[jax.Array, jax.Array]
    prior: tuple[jax.Array, jax.Array] | None


def sample_with_kl(agent: Agent, policy_params, prior_params, obs: jax.Array, key: jax.Array):
    """Reparameterised a ~ pi(.|s) and the KL estimator's value KL(pi || p0)(s) there."""
    latent, prior_latent = agent.policy.apply(policy_params, obs), agent.prior.latent(prior_params, obs)
    return sample_at(agent, latent, prior_latent, key)


def sample_at(agent: Agent, latent: tuple[jax.Array, jax.Array], prior_latent, key: jax.Array):
    """`sample_with_kl` from the policy's and the prior's latents at s, already computed."""
    mean, std = latent
    actions = tanh_normal(mean, std).sample(seed=key)
    return actions, agent.kl(mean, std, actions, prior_latent)


def q_value(agent: Agent, variables, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """Q(s, a) in eval mode (running batch statistics); the lower critic of an ensemble. Book: eq-ch6-twin."""
    q = agent.head.value(agent.critic.apply(variables, obs, actions))
    return jnp.min(q, axis=0) if agent.critic_size > 1 else q


def gradient_penalty(agent: Agent, variables, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """The action-gradient penalty of every critic of the ensemble, summed.

    With the ensemble's member module, each member's penalty runs that member's network alone (vmapped over
    the members' variables); otherwise each member's penalty differentiates its output of the whole ensemble.
    """
    value = lambda o, a: agent.head.value(agent.critic.apply(variables, o, a))  # noqa: E731
    if agent.critic_size == 1:
        return action_grad_penalty(value, obs, actions)
    if agent.critic_member is not None:
        def member_penalty(member_variables):
            q = lambda o, a: agent.head.value(agent.critic_member.apply(member_variables, o, a))  # noqa: E731
            return action_grad_penalty(q, obs, actions)

        return jnp.sum(jax.vmap(member_penalty)(variables))
    return sum(action_grad_penalty(lambda o, a, e=e: value(o, a)[e], obs, actions) for e in range(agent.critic_size))


def critic_objective(agent: Agent, critic_params, state: AgentState, batch: Transitions, key: jax.Array,
                     reward: jax.Array | None = None, latents: Latents | None = None):
    """Bellman loss of eq-ch5-online plus the gradient penalty on the batch's demonstration rows.

    `reward` (the batch's reward) and `latents` (at s') may come precomputed (`critic_step` shares them); by
    default they are computed here. Returns (loss, (metrics, the online pass's batch statistics)).
    """
    cfg = agent.config
    if reward is None:
        reward = agent.reward.of_batch(state.reward.variables, batch)
    if latents is None:
        latents = Latents(agent.policy.apply(state.actor.variables, batch.next_obs),
                          agent.prior.latent(state.prior, batch.next_obs))
    r = jax.lax.stop_gradient(reward)
    next_a, next_kl = sample_at(agent, latents.policy, latents.prior, key)
    out, next_out, batch_stats = agent.critic_pass(critic_params, state.critic, batch.obs, batch.action,
                                                   batch.next_obs, next_a)
    target = agent.head.bellman_target(r, batch.terminal, next_out, next_kl, gamma=cfg.gamma, beta=cfg.beta,
                                       ceiling=agent.reward.value_ceiling(cfg.gamma))
    bellman = critic_loss(agent.head, out, target)
    loss = bellman
    penalty = jnp.zeros(())
    if cfg.grad_penalty > 0 and cfg.n_demo > 0:
        demo = slice(0, cfg.n_demo)
        variables = {"params": critic_params, "batch_stats": state.critic.batch_stats}
        penalty = gradient_penalty(agent, variables, batch.obs[demo], batch.action[demo])
        loss = loss + cfg.grad_penalty * penalty
    metrics = {"critic_loss": bellman, "grad_penalty": penalty, "q": jnp.mean(agent.head.value(out)),
               "reward": jnp.mean(r), "target": jnp.mean(agent.head.target_value(target))}
    clipped = getattr(agent.head, "clipped_fraction", None)  # a categorical head: shifted atoms off its support
    if clipped is not None:
        metrics["clipped_frac"] = clipped(r, batch.terminal, next_kl, gamma=cfg.gamma, beta=cfg.beta)
    return loss, (metrics, batch_stats)


def actor_objective(agent: Agent, policy_params, state: AgentState, batch: Transitions, key: jax.Array,
                    prior_latent=None):
    variables = {"params": policy_params, "batch_stats": state.actor.batch_stats}
    if prior_latent is None:
        prior_latent = agent.prior.latent(state.prior, batch.obs)
    actions, kl = sample_at(agent, agent.policy.apply(variables, batch.obs), prior_latent, key)
    q = q_value(agent, state.critic.variables, batch.obs, actions)
    loss = actor_loss(q, kl, agent.config.beta)
    return loss, {"actor_loss": loss, "kl": jnp.mean(kl)}


def critic_step(agent: Agent, state: AgentState, batch: Transitions, key: jax.Array,
                latents: Latents | None = None):
    """One critic step, a Polyak update of its target, and one reward-refinement step (if the reward refines).

    One forward pass of the reward network gives both the critic's reward and the refinement's loss (both at
    the reward params the step starts from).
    Book: eq-ch6-wn.
    """
    r, reward, r_metrics = agent.reward.reward_and_refine(state.reward, batch)
    (_, (metrics, batch_stats)), grads = jax.value_and_grad(
        lambda p: critic_objective(agent, p, state, batch, key, r, latents),
        has_aux=True)(state.critic.params)
    critic = state.critic.apply_gradients(grads, batch_stats=batch_stats)
    critic = critic.replace(params=agent.critic_project(critic.params)).update_target(agent.config.tau)
    return state._replace(critic=critic, reward=reward), {**metrics, **r_metrics}


def actor_step(agent: Agent, state: AgentState, batch: Transitions, key: jax.Array, prior_latent=None):
    (_, metrics), grads = jax.value_and_grad(
        lambda p: actor_objective(agent, p, state, batch, key, prior_latent),
        has_aux=True)(state.actor.params)
    return state._replace(actor=state.actor.apply_gradients(grads), step=state.step + 1), metrics


def fixed_latents(agent: Agent, state: AgentState, batch: Transitions) -> tuple[Latents, object]:
    """What the networks no critic step trains output on the whole [utd, B] batch, in one pass each: the actor
    at every s' (its params change only in the actor step, after the critic steps) and the frozen prior at
    every s' and at the actor step's s (the last batch's obs).

    Returns (Latents [utd, B, d_a], the prior's latent at the actor step's s)."""
    utd = batch.obs.shape[0]
    policy = agent.policy.apply(state.actor.variables, batch.next_obs)
    prior_obs = jnp.concatenate([batch.next_obs, batch.obs[-1:]])  # [utd + 1, B, obs]
    prior = agent.prior.latent(state.prior, prior_obs)
    if prior is None:
        return Latents(policy, None), None
    return Latents(policy, jax.tree.map(lambda x: x[:utd], prior)), jax.tree.map(lambda x: x[utd], prior)


def make_update(agent: Agent) -> Callable:
    """jit(update(state, batch[utd, B], key, train_actor=True) -> (state, metrics)).

    `train_actor=False` (static) runs only the critic and reward steps: the warm-up in which the critic learns the
    value of the initial policy's own rollouts before the actor starts following its action-gradient.
    Book: eq-ch6-utd.
    """

    def update(state: AgentState, batch: Transitions, key: jax.Array, train_actor: bool = True):
        if batch.obs.ndim < 3:
            raise ValueError(f"update expects a batch with a leading UTD axis [utd, B, ...], got obs {batch.obs.shape}")
        keys = jax.random.split(key, batch.obs.shape[0] + 1)
        latents, prior_at_obs = fixed_latents(agent, state, batch)

        def body(s, xs):
            return critic_step(agent, s, *xs)

        state, critic_metrics = jax.lax.scan(body, state, (batch, keys[1:], latents))
        critic_metrics = jax.tree.map(jnp.mean, critic_metrics)
        if not train_actor:
            return state, critic_metrics
        last = jax.tree.map(lambda x: x[-1], batch)
        state, a_metrics = actor_step(agent, state, last, keys[0], prior_at_obs)
        return state, {**critic_metrics, **a_metrics}

    return jax.jit(update, static_argnames="train_actor")


def make_act(agent: Agent) -> Callable:
    """jit(act(policy_variables, obs, key, deterministic)): a sample for exploration, tanh(mean) for evaluation."""

    def act(policy_variables, obs: jax.Array, key: jax.Array, deterministic: bool):
        mean, std = agent.policy.apply(policy_variables, obs)
        if deterministic:
            return jnp.tanh(mean)
        return tanh_normal(mean, std).sample(seed=key)

    return jax.jit(act, static_argnums=3)


__all__ = ["Agent", "AgentState", "CoherentReward", "EnvironmentReward", "TrainState", "init_state", "make_act",
           "make_agent", "make_update", "sample_with_kl", "SparseReward"]
