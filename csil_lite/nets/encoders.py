"""Encoders: the component that maps an observation pytree (`csil_lite.obs`) to the feature vector the policy,
critic and reward networks read. Each network holds its own encoder as a submodule, so an encoder with params
(the image encoders to come) is trained by the network that owns it; `Flatten` has none.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Flatten(nn.Module):
    """Every leaf flattened over its own (non-batch) axes and concatenated, in the pytree's leaf order (a dict's
    sorted keys), as float32; uint8 leaves (images) are scaled to [0, 1]. A single float32 array with one event
    axis (a state vector) passes through unchanged.

    `event_ndims`: the number of non-batch axes of each leaf, in leaf order (() = one per leaf, state vectors).
    """

    event_ndims: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, obs) -> jax.Array:
        leaves = jax.tree.leaves(obs)
        ndims = self.event_ndims or (1,) * len(leaves)
        if len(ndims) != len(leaves):
            raise ValueError(f"Flatten encoder: built for {len(ndims)} observation arrays, got {len(leaves)}")
        parts = []
        for x, n in zip(leaves, ndims):
            lead = x.shape[: x.ndim - n]
            x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
            parts.append(x if n == 1 else x.reshape(*lead, -1))
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
