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


def phase_pair_features(x: jax.Array, frequencies: jax.Array, activation: str = "triangle") -> jax.Array:
    """HetStat's stationary-layer features [psi(z + pi/4), psi(z - pi/4)] / sqrt(D) with z = x @ frequencies.

    `x` [..., k] is the already scaled bottleneck h * exp(l); `frequencies` [k, D/2]; returns [..., D].
    """
    if frequencies.ndim != 2 or x.shape[-1] != frequencies.shape[0]:
        raise ValueError(
            f"phase_pair_features: x [..., k] needs frequencies [k, D/2]; got x {x.shape}, frequencies {frequencies.shape}"
        )
    act = periodic_activation(activation)
    z = x @ frequencies
    f = jnp.concatenate([act(z + jnp.pi / 4), act(z - jnp.pi / 4)], axis=-1)
    return f / jnp.sqrt(2.0 * frequencies.shape[1])


def feature_kernel(
    x: jax.Array, x_prime: jax.Array, frequencies: jax.Array, activation: str = "triangle"
) -> jax.Array:
    """k(x, x') = f(x)^T f(x') of the +-pi/4 phase-pair features, broadcast over leading axes.

    With a fixed `frequencies` matrix this is the kernel the layer actually computes; with many columns drawn
    N(0, 1) it approximates the expected kernel E_W[f(x)^T f(x')]. Only 'sin' (sin + cos) makes it exactly
    stationary (a function of x - x' alone, with k(x, x) = 1 for every x and every W); the triangle wave and the
    periodic ReLU with this fixed phase pair give a k(x, x) that varies with x.
    """
    f = phase_pair_features(x, frequencies, activation)
    g = phase_pair_features(x_prime, frequencies, activation)
    return jnp.sum(f * g, axis=-1)


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
