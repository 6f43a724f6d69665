"""Synthetic high-dimensional embeddings of a low-dimensional state, for chapter 10's collapse experiments.

A large behaviour model's internal activations vary with the task's state and with much else: the camera's view,
the flow-matching noise and time, details of the proprioception. `SyntheticEmbedding` builds such an input with
every ingredient under control:

    x = [ sqrt(2) cos(s W_s / l + b_s),  sqrt(2) cos(z W_z / l + b_z) ],   z ~ U(-1, 1)^k drawn at every call

The first `signal_dims` coordinates are random Fourier features of the state s (they carry the task); the other
`dim - signal_dims` are random Fourier features of a nuisance z with intrinsic dimension k = `nuisance_latent`,
drawn afresh every time a state is embedded, the same way on and off the demonstrations (a re-embedding of the
same state with another nuisance draw is what `diagnostics.within_state_covariance` needs). Every coordinate has
unit mean square, so the nuisance's share of the squared distance between two embeddings is its share of the
coordinates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SyntheticEmbedding(NamedTuple):
    signal_weights: np.ndarray  # [state_dim, signal_dims]
    signal_phases: np.ndarray  # [signal_dims]
    nuisance_weights: np.ndarray  # [nuisance_latent, dim - signal_dims]
    nuisance_phases: np.ndarray  # [dim - signal_dims]

    @property
    def dim(self) -> int:
        return self.signal_weights.shape[1] + self.nuisance_weights.shape[1]

    def __call__(self, states: np.ndarray, seed: int) -> np.ndarray:
        """[N, dim] embeddings of `states` [N, state_dim], the nuisance drawn from `seed`."""
        states = np.asarray(states, np.float64)
        if states.ndim != 2 or states.shape[1] != self.signal_weights.shape[0]:
            raise ValueError(f"SyntheticEmbedding: expected states [N, {self.signal_weights.shape[0]}], got "
                             f"{states.shape}")
        signal = np.sqrt(2.0) * np.cos(states @ self.signal_weights + self.signal_phases)
        k = self.nuisance_weights.shape[0]
        z = np.random.default_rng(seed).uniform(-1.0, 1.0, (len(states), k))
        nuisance = np.sqrt(2.0) * np.cos(z @ self.nuisance_weights + self.nuisance_phases)
        return np.concatenate([signal, nuisance], axis=1).astype(np.float32)


def synthetic_embedding(state_dim: int, dim: int, *, signal_dims: int = 8, nuisance_latent: int = 32,
                        length_scale: float = 0.5, seed: int = 0) -> SyntheticEmbedding:
    """A fixed random embedding (see the module docstring); `dim == signal_dims` has no nuisance."""
    if state_dim < 1 or signal_dims < 1 or dim < signal_dims or nuisance_latent < 1 or length_scale <= 0:
        raise ValueError(f"synthetic_embedding: need state_dim, signal_dims, nuisance_latent >= 1, dim >= "
                         f"signal_dims and length_scale > 0; got {state_dim}, {signal_dims}, {nuisance_latent}, "
                         f"{dim}, {length_scale}")
    rng = np.random.default_rng(seed)
    n_nuisance = dim - signal_dims
    return SyntheticEmbedding(
        signal_weights=rng.normal(0.0, 1.0 / length_scale, (state_dim, signal_dims)),
        signal_phases=rng.uniform(0.0, 2.0 * np.pi, signal_dims),
        nuisance_weights=rng.normal(0.0, 1.0 / length_scale, (nuisance_latent, n_nuisance)),
        nuisance_phases=rng.uniform(0.0, 2.0 * np.pi, n_nuisance),
    )


def with_oracle(x: np.ndarray, states: np.ndarray, scale: float) -> np.ndarray:
    """The embedding with the low-dimensional state appended at `scale` (the thesis's 'oracle' object state)."""
    x, states = np.asarray(x), np.asarray(states)
    if len(x) != len(states):
        raise ValueError(f"with_oracle: {len(x)} embeddings but {len(states)} states")
    return np.concatenate([x, scale * states], axis=1).astype(np.float32)
