"""The critic as one component: network, head, passes, ensemble, projection, penalty and support together.

`Critic` is what the online update (`agents.core`), SARSA pretraining (`pretrain.critic`) and the probes
(`probes`) use; each piece is written once here:

- `forward`: the Bellman loss's passes. Critics without batch statistics run the target params on (s', a') and
  the online params on (s, a) (`SeparatePasses`); batch-normalised ones (CrossQ/XQC) run each params set once, in
  train mode, over the joint batch [s; s'] (`JointPass`, `nets.critic.joint_forward`);
- `value`: Q(s, a) in eval mode, the lower critic of an ensemble (eq-ch6-twin);
- `penalty`: the action-gradient penalty of every member, summed (eq-ch5-sarsa);
- `project`: weight normalisation (unit fan-in kernels) after every optimiser step, or nothing (eq-ch6-wn);
- `optimiser`: Adam, or AdamW decaying what weight normalisation leaves free (eq-ch6-decay);
- `resolve`: a categorical head's support, computed from the demonstrations and the reward (eq-ch6-support).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from csil_lite.agents.state import TrainState
from csil_lite.losses import action_grad_penalty
from csil_lite.nets.critic import joint_forward, unit_fan_in
from csil_lite.nets.heads import CategoricalHead, ScalarHead, discounted_returns, ensemble_min, quantile_support


class SeparatePasses(NamedTuple):
    """Target critic on (s', a'), online critic on (s, a): for critics without batch statistics."""

    def __call__(self, module: nn.Module, variables: dict, target_variables: dict, obs, actions, next_obs,
                 next_actions):
        next_out = module.apply(target_variables, next_obs, next_actions)
        out = module.apply(variables, obs, actions)
        return out, next_out, variables["batch_stats"]


class JointPass(NamedTuple):
    """Batch-normalised critics (CrossQ/XQC): the target params and the online params each run one train-mode
    pass over the joint batch [s; s'], [a; a']; the target's s' half bootstraps, the online s half is regressed,
    and only the online pass's batch statistics are kept. Book: eq-ch6-joint."""

    def __call__(self, module: nn.Module, variables: dict, target_variables: dict, obs, actions, next_obs,
                 next_actions):
        _, next_out, _ = joint_forward(module, target_variables, obs, actions, next_obs, next_actions)
        out, _, stats = joint_forward(module, variables, obs, actions, next_obs, next_actions)
        return out, next_out, stats


class QuantileSupport(NamedTuple):
    """A categorical head's atoms: quantiles of the demonstrations' discounted returns under the run's reward,
    on [v_min, v_max]; `v_min=None` takes the reward source's `value_floor`. Book: eq-ch6-support."""

    n_atoms: int
    v_min: float | None
    v_max: float

    def atoms(self, reward, bc_params, demos, demo_rewards: np.ndarray, gamma: float,
              key: jax.Array) -> tuple[float, ...]:
        v_min = self.v_min
        if v_min is None:
            v_min = reward.value_floor(bc_params, demos, jnp.asarray(demo_rewards), gamma, key)
            if not v_min < self.v_max:
                raise ValueError(f"critic_v_min='floor' gave {v_min:.3g}, not below critic_v_max = {self.v_max}: "
                                 "set critic_v_min to a number")
        returns = discounted_returns(np.asarray(demo_rewards), np.asarray(demos.last), gamma)
        return quantile_support(returns, self.n_atoms, v_min, self.v_max)


def _identity(params):
    return params


def critic_optimiser(lr: float | optax.Schedule, weight_decay: float,
                     weight_norm: bool) -> optax.GradientTransformation:
    """Adam; with `weight_decay` > 0, AdamW whose decay acts on what weight normalisation leaves free. `lr`: a
    number or an optax schedule of the step (`assembly.critic_learning_rate`).

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


class Critic(NamedTuple):
    """The critic component (see the module docstring).

    `module`: the network (an ensemble of `size` members stacked on axis 0 when `size` > 1, with `member` one
    member's module); `head`: what its output means; `batch_norm`: the module keeps batch statistics, so the
    Bellman loss runs one joint train-mode pass; `weight_norm`: kernels projected to unit fan-in norm;
    `support`: how a categorical head's atoms are resolved (None: the head needs nothing).
    """

    module: nn.Module
    head: ScalarHead | CategoricalHead
    batch_norm: bool = False
    weight_norm: bool = False
    size: int = 1
    member: nn.Module | None = None
    support: QuantileSupport | None = None

    @property
    def passes(self) -> SeparatePasses | JointPass:
        return JointPass() if self.batch_norm else SeparatePasses()

    @property
    def project(self) -> Callable[[Any], Any]:
        """Applied to the params at initialisation and after every optimiser step. Book: eq-ch6-wn."""
        return unit_fan_in if self.weight_norm else _identity

    def init(self, key: jax.Array, obs, actions: jax.Array) -> dict:
        """The network's variables for an example (batched) observation pytree and action (not projected)."""
        return self.module.init(key, obs, actions)

    def forward(self, params, state: TrainState, obs, actions, next_obs, next_actions):
        """(out(s, a) with `params`, out(s', a') with the target params, the batch statistics to keep)."""
        variables = {"params": params, "batch_stats": state.batch_stats}
        return self.passes(self.module, variables, state.target_variables, obs, actions, next_obs, next_actions)

    def value(self, variables, obs, actions: jax.Array) -> jax.Array:
        """Q(s, a) in eval mode (running batch statistics); the lower critic of an ensemble. Book: eq-ch6-twin."""
        return ensemble_min(self.head.value(self.module.apply(variables, obs, actions)))

    def penalty(self, variables, obs, actions: jax.Array) -> jax.Array:
        """The action-gradient penalty of every critic of the ensemble, summed, in eval mode (eq-ch5-sarsa).

        Each member's penalty runs that member's network alone (vmapped over the members' variables)."""
        if self.size == 1:
            return action_grad_penalty(lambda o, a: self.head.value(self.module.apply(variables, o, a)), obs,
                                       actions)

        def member_penalty(member_variables):
            q = lambda o, a: self.head.value(self.member.apply(member_variables, o, a))  # noqa: E731
            return action_grad_penalty(q, obs, actions)

        return jnp.sum(jax.vmap(member_penalty)(variables))

    def optimiser(self, lr: float | optax.Schedule, weight_decay: float) -> optax.GradientTransformation:
        """`critic_optimiser` for this critic's projection."""
        return critic_optimiser(lr, weight_decay, self.weight_norm)

    def resolve(self, reward, bc_params, demos, demo_rewards: np.ndarray, gamma: float, key: jax.Array) -> "Critic":
        """This critic with what it computes from the data: a categorical head's support (`support`)."""
        if self.support is None:
            return self
        atoms = self.support.atoms(reward, bc_params, demos, demo_rewards, gamma, key)
        return self._replace(head=CategoricalHead(atoms), support=None)

    def setup(self) -> dict:
        """What `resolve` computed, as plain data (stored with a run; `with_setup` restores it)."""
        return self.head.setup()

    def with_setup(self, values: dict) -> "Critic":
        return self._replace(head=self.head.with_setup(values), support=None)
