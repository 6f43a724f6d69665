"""One KL-regularised soft actor-critic; CSIL, SAC-from-BC and BC-only are configurations of it.

State is a pytree (`AgentState`, one `TrainState` per network); `update(state, batch, key)` is pure and jitted:
`utd` critic (+ reward refinement) steps run in `lax.scan` over the batch's leading axis, each followed by a Polyak
step, then one actor step on the last batch.

What differs between algorithms is resolved once, in `assembly.make_agent`, into components (`components.py`): the
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

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from csil_lite import obs as obs_lib
from csil_lite.agents.components import KLEstimator, Normaliser, Prior, RefinementSchedule, RewardSource
from csil_lite.agents.critic import Critic
from csil_lite.agents.state import AgentState, TrainState
from csil_lite.config import AgentConfig
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import tanh_normal
from csil_lite.losses import actor_loss, critic_loss
from csil_lite.nets.encoders import EndToEnd, NoAugmentation


class Agent(NamedTuple):
    """Static pieces (modules, components, optimisers, numbers) closed over by the jitted functions.

    Built from a configuration by `csil_lite.assembly.make_agent`; `resolve` fills in what the components compute
    from the BC policy and the demonstrations (the coherent reward's shift, a categorical critic's support).
    """

    config: AgentConfig
    policy: nn.Module
    critic: Critic
    prior: Prior
    kl: KLEstimator
    reward: RewardSource
    refinement: RefinementSchedule
    normaliser: Normaliser
    policy_optim: optax.GradientTransformation
    critic_optim: optax.GradientTransformation
    reward_optim: optax.GradientTransformation
    action_dim: int
    # which gradients train the encoders (`nets.encoders.ENCODER_TRAINING`): the optimisers above are already
    # wrapped by it; `prepare` asks it for the critic's starting encoder and SARSA's optimiser
    encoder_training: Any = EndToEnd()
    # unroll the UTD loop (XLA's CPU backend runs convolutions inside a loop ~27x slower; `obs.unroll_loops`)
    unroll_critic_steps: bool = False
    # what every batch's images go through before any network sees them (`nets.encoders.AUGMENTATIONS`)
    augment: Any = NoAugmentation()
    # the same agent's networks without their encoders, reading features (`assembly.make_agent` builds it when one
    # frozen encoder serves every network): `encoder_training.pre_encode` hands it the encoded batch
    headless: Any = None

    def resolve(self, bc_params, demos: Transitions, key: jax.Array) -> tuple["Agent", jax.Array]:
        """The agent with its components' setup resolved from the BC policy and the demonstrations, and the
        demonstrations' rewards under the resolved reward, in the critic's units (times the normaliser's starting
        scale): what SARSA pretraining regresses on and the categorical support is placed from."""
        demos = jax.tree.map(jnp.asarray, demos)
        reward = self.reward.resolve(bc_params, demos)
        demo_rewards = reward.of_batch(bc_params, demos)
        normaliser = self.normaliser.resolve(np.asarray(demo_rewards), np.asarray(demos.last))
        demo_rewards = demo_rewards * normaliser.scale(normaliser.start())
        critic = self.critic.resolve(reward, bc_params, demos, demo_rewards, self.config.gamma, key)
        return self._replace(reward=reward, critic=critic, normaliser=normaliser)._headless_setup(), demo_rewards

    def setup(self) -> dict:
        """What `resolve` computed, as plain data (a run stores it; `with_setup` restores it without the data)."""
        return {"reward": self.reward.setup(), "critic": self.critic.setup(), "normaliser": self.normaliser.setup()}

    def with_setup(self, values: dict) -> "Agent":
        return self._replace(reward=self.reward.with_setup(values["reward"]),
                             critic=self.critic.with_setup(values["critic"]),
                             normaliser=self.normaliser.with_setup(values.get("normaliser", {})))._headless_setup()

    def _headless_setup(self) -> "Agent":
        """The headless twin (if any) with this agent's resolved setup: both compute the same update."""
        return self if self.headless is None else self._replace(headless=self.headless.with_setup(self.setup()))


def init_state(agent: Agent, bc_params: dict, critic_params: dict, actor_params: dict | None = None) -> AgentState:
    """Actor, reward network and prior start from the BC variables; the critic (and its target) from
    `critic_params` (pretrained or not). Without a learned reward the reward network is empty. `actor_params`:
    the actor's start instead of the BC variables (a residual's near-zero last layer, `BaseEdge.start`)."""
    reward_vars = bc_params if agent.reward.learned else {"params": {}}
    critic_vars = {**critic_params, "params": agent.critic.project(critic_params["params"])}  # before the target copy
    return AgentState(
        actor=TrainState.create(bc_params if actor_params is None else actor_params, agent.policy_optim),
        critic=TrainState.create(critic_vars, agent.critic_optim, target=True),
        reward=TrainState.create(reward_vars, agent.reward_optim),
        prior=jax.tree.map(jnp.array, bc_params),
        step=jnp.zeros((), jnp.int32),
        return_scale=jnp.asarray(agent.normaliser.scale(agent.normaliser.start()), jnp.float32),
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
    critic, head = agent.critic, agent.critic.head
    next_a, next_kl = sample_at(agent, latents.policy, latents.prior, key)
    out, next_out, batch_stats = critic.forward(critic_params, state.critic, batch.obs, batch.action,
                                                batch.next_obs, next_a)
    target = head.bellman_target(r, batch.terminal, next_out, next_kl, gamma=cfg.gamma, beta=cfg.beta,
                                 ceiling=agent.reward.value_ceiling(cfg.gamma))
    bellman = critic_loss(head, out, target)
    loss = bellman
    penalty = jnp.zeros(())
    if cfg.grad_penalty > 0 and cfg.n_demo > 0:
        demo = slice(0, cfg.n_demo)
        variables = {"params": critic_params, "batch_stats": state.critic.batch_stats}
        penalty = critic.penalty(variables, obs_lib.take(batch.obs, demo), batch.action[demo])
        loss = loss + cfg.grad_penalty * penalty
    metrics = {"critic_loss": bellman, "grad_penalty": penalty, "q": jnp.mean(head.value(out)),
               "reward": jnp.mean(r), "target": jnp.mean(head.target_value(target))}
    clipped = getattr(head, "clipped_fraction", None)  # a categorical head: shifted atoms off its support
    if clipped is not None:
        metrics["clipped_frac"] = clipped(r, batch.terminal, next_kl, gamma=cfg.gamma, beta=cfg.beta)
        # where the predicted mass of the agent's own (online) rows sits on the support
        metrics.update(head.bin_stats(jax.lax.stop_gradient(out)[..., cfg.n_demo:, :]))
    return loss, (metrics, batch_stats)


def actor_objective(agent: Agent, policy_params, state: AgentState, batch: Transitions, key: jax.Array,
                    prior_latent=None):
    variables = {"params": policy_params, "batch_stats": state.actor.batch_stats}
    if prior_latent is None:
        prior_latent = agent.prior.latent(state.prior, batch.obs)
    actions, kl = sample_at(agent, agent.policy.apply(variables, batch.obs), prior_latent, key)
    q = agent.critic.value(state.critic.variables, batch.obs, actions)
    loss = actor_loss(q, kl, agent.config.beta)
    return loss, {"actor_loss": loss, "kl": jnp.mean(kl)}


def critic_step(agent: Agent, state: AgentState, batch: Transitions, key: jax.Array,
                latents: Latents | None = None):
    """One critic step, a Polyak update of its target, and, if the refinement schedule refines per critic step,
    one reward-refinement step.

    One forward pass of the reward network gives both the critic's reward and the refinement's loss (both at
    the reward params the step starts from).
    Book: eq-ch6-wn.
    """
    r, reward, r_metrics = agent.refinement.in_critic_step(agent.reward, state.reward, batch)
    r = r * state.return_scale  # 1 unless the rewards are normalised (eq-ch6-norm)
    (_, (metrics, batch_stats)), grads = jax.value_and_grad(
        lambda p: critic_objective(agent, p, state, batch, key, r, latents),
        has_aux=True)(state.critic.params)
    critic = state.critic.apply_gradients(grads, batch_stats=batch_stats)
    critic = critic.replace(params=agent.critic.project(critic.params)).update_target(agent.config.tau)
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
    utd = batch.action.shape[0]
    policy = agent.policy.apply(state.actor.variables, batch.next_obs)
    prior_obs = obs_lib.concat([batch.next_obs, obs_lib.take(batch.obs, slice(-1, None))])  # [utd + 1, B, ...]
    prior = agent.prior.latent(state.prior, prior_obs)
    if prior is None:
        return Latents(policy, None), None
    return Latents(policy, jax.tree.map(lambda x: x[:utd], prior)), jax.tree.map(lambda x: x[utd], prior)


def update(agent: Agent, state: AgentState, batch: Transitions, key: jax.Array, train_actor: bool = True):
    """One update: `utd` critic (+ reward) steps in `lax.scan` over the batch's leading axis, each followed by a
    Polyak step, the reward's refinement if it refines once per update (`agent.refinement`), then (with
    `train_actor`) one actor step on the last batch. Returns (state, mean metrics).

    `train_actor=False` runs only the critic and reward steps: the warm-up in which the critic learns the value
    of the initial policy's own rollouts before the actor starts following its action-gradient.
    Book: eq-ch6-utd.
    """
    if batch.action.ndim < 3:
        raise ValueError(f"update expects a batch with a leading UTD axis [utd, B, ...], got actions "
                         f"{batch.action.shape}")
    keys = jax.random.split(key, batch.action.shape[0] + 1)
    batch = agent.augment.transitions(jax.random.fold_in(key, 1), batch)  # a key of its own: other streams unchanged
    agent, batch = agent.encoder_training.pre_encode(agent, state, batch)  # one frozen encoder: encode once
    latents, prior_at_obs = fixed_latents(agent, state, batch)

    def body(s, xs):
        return critic_step(agent, s, *xs)

    state, critic_metrics = jax.lax.scan(body, state, (batch, keys[1:], latents), unroll=agent.unroll_critic_steps)
    critic_metrics = jax.tree.map(jnp.mean, critic_metrics)
    if agent.normaliser.active:  # a component's static property: which metrics exist, not what is computed
        critic_metrics["return_scale"] = state.return_scale
    last = jax.tree.map(lambda x: x[-1], batch)
    reward, r_metrics = agent.refinement.after_critic_steps(agent.reward, state.reward, last)
    state, critic_metrics = state._replace(reward=reward), {**critic_metrics, **r_metrics}
    if not train_actor:
        return state, critic_metrics
    state, a_metrics = actor_step(agent, state, last, keys[0], prior_at_obs)
    return state, {**critic_metrics, **a_metrics}


def make_update(agent: Agent) -> Callable:
    """jit(update(state, batch[utd, B], key, train_actor=True) -> (state, metrics)) of `update` for this agent."""
    return jax.jit(lambda state, batch, key, train_actor=True: update(agent, state, batch, key, train_actor),
                   static_argnames="train_actor")


def make_act(agent: Agent) -> Callable:
    """jit(act(policy_variables, obs, key, deterministic)): a sample for exploration, tanh(mean) for evaluation."""

    def act(policy_variables, obs, key: jax.Array, deterministic: bool):
        mean, std = agent.policy.apply(policy_variables, obs)
        if deterministic:
            return jnp.tanh(mean)
        return tanh_normal(mean, std).sample(seed=key)

    return jax.jit(act, static_argnums=3)


__all__ = ["Agent", "AgentState", "TrainState", "init_state", "make_act", "make_update", "sample_with_kl"]
