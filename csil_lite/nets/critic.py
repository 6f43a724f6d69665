"""Critics. The CSIL default is one LayerNorm MLP (not twin critics): Linear -> LayerNorm -> tanh -> Linear -> ELU -> Linear(1)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from csil_lite.nets.layers import MLP


class LayerNormCritic(nn.Module):
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        if obs.shape[:-1] != action.shape[:-1]:
            raise ValueError(f"critic: obs batch shape {obs.shape[:-1]} != action batch shape {action.shape[:-1]}")
        x = jnp.concatenate([obs, action], axis=-1)
        return MLP((*self.hidden, 1), layer_norm=True)(x)[..., 0]
