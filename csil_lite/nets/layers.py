"""Building blocks shared by policies and critics: the trunk MLP and the periodic activations.

The periodic activations are scaled so that E[act(z)^2] ~= 1 for a uniformly distributed phase, which keeps the
feature norm ||f||^2 ~= 1 and hence the HetStat prior variance at its intended level.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_TRIANGLE_GAIN = jnp.pi / (2.0 * jnp.sqrt(2.0))


def triangle_wave(x: jax.Array) -> jax.Array:
    """Period-2pi triangle wave with unit slope at 0 and amplitude pi/2 (a piecewise-linear sine)."""
    m = jnp.floor(x / jnp.pi + 0.5)
    return (x - jnp.pi * m) * (1.0 - 2.0 * jnp.mod(m, 2.0))


def triangle(x: jax.Array) -> jax.Array:
    return _TRIANGLE_GAIN * triangle_wave(x)


def periodic_relu(x: jax.Array) -> jax.Array:
    return (jnp.pi / 4.0) * (triangle_wave(x) + triangle_wave(x + jnp.pi / 2.0))


def sin_cos(x: jax.Array) -> jax.Array:
    """sin + cos: with the +-pi/4 feature pair this gives exactly random Fourier features."""
    return jnp.sin(x) + jnp.cos(x)


PERIODIC_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sin": sin_cos,
    "triangle": triangle,
    "prelu": periodic_relu,
}


def periodic_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    try:
        return PERIODIC_ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown periodic activation {name!r}; choose from {sorted(PERIODIC_ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Orthogonally initialised MLP (zero biases), ELU by default, optionally activating the last layer.

    With `layer_norm`, the first layer is followed by LayerNorm and tanh (Acme's LayerNormMLP convention).
    """

    sizes: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.elu
    activate_final: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, size in enumerate(self.sizes):
            x = nn.Dense(size, kernel_init=nn.initializers.orthogonal(), bias_init=nn.initializers.zeros)(x)
            last = i == len(self.sizes) - 1
            if last and not self.activate_final:
                break
            if i == 0 and self.layer_norm:
                x = jnp.tanh(nn.LayerNorm()(x))
            else:
                x = self.activation(x)
        return x
