"""Critics: a module that maps (s, a) to a raw output, and a head that says what that output means.

The CSIL default is one LayerNorm MLP (not twin critics): Linear -> LayerNorm -> tanh -> Linear -> ELU -> Linear(1),
with a scalar head. Everything that uses a critic (the Bellman loss, the gradient penalty, the actor loss, SARSA
pretraining) goes through the head's protocol:

- `head.value(out)`: the Q-value(s) the output stands for, [batch];
- `head.loss(out, target)`: the regression loss of the output towards a Bellman target (a scalar here; the
  categorical head takes a projected distribution instead).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from csil_lite.nets.layers import MLP


class LayerNormCritic(nn.Module):
    hidden: Sequence[int] = (256, 256)
    outputs: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        if obs.shape[:-1] != action.shape[:-1]:
            raise ValueError(f"critic: obs batch shape {obs.shape[:-1]} != action batch shape {action.shape[:-1]}")
        x = jnp.concatenate([obs, action], axis=-1)
        out = MLP((*self.hidden, self.outputs), layer_norm=True)(x)
        return out[..., 0] if self.outputs == 1 else out


class ScalarHead(NamedTuple):
    """The critic's output is Q itself; the loss is the squared Bellman error."""

    def value(self, out: jax.Array) -> jax.Array:
        return out

    def loss(self, out: jax.Array, target: jax.Array) -> jax.Array:
        return jnp.mean(jnp.square(out - target))


class Critic(NamedTuple):
    """A critic component: the module and the head that reads its output."""

    module: nn.Module
    head: ScalarHead


def make_critic(hidden: Sequence[int]) -> Critic:
    """The critic of a configuration (today: the LayerNorm MLP with a scalar head)."""
    return Critic(LayerNormCritic(hidden=tuple(hidden)), ScalarHead())
