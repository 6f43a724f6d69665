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

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from csil_lite import diagnostics as dg
from csil_lite.config import REMEDIES, EmbedConfig, Remedy


class SyntheticEmbedding(NamedTuple):
    signal_weights: np.ndarray  # [state_dim, signal_dims]
    signal_phases: np.ndarray  # [signal_dims]
    nuisance_weights: np.ndarray  # [nuisance_latent, dim - signal_dims]
    nuisance_phases: np.ndarray  # [dim - signal_dims]
    linear_signal: bool = False  # the signal is s W_s (unit mean square per coordinate for z-scored s), no cosine

    @property
    def dim(self) -> int:
        return self.signal_weights.shape[1] + self.nuisance_weights.shape[1]

    def __call__(self, states: np.ndarray, seed: int) -> np.ndarray:
        """[N, dim] embeddings of `states` [N, state_dim], the nuisance drawn from `seed`."""
        states = np.asarray(states, np.float64)
        if states.ndim != 2 or states.shape[1] != self.signal_weights.shape[0]:
            raise ValueError(f"SyntheticEmbedding: expected states [N, {self.signal_weights.shape[0]}], got "
                             f"{states.shape}")
        if self.linear_signal:
            signal = states @ self.signal_weights
        else:
            signal = np.sqrt(2.0) * np.cos(states @ self.signal_weights + self.signal_phases)
        k = self.nuisance_weights.shape[0]
        z = np.random.default_rng(seed).uniform(-1.0, 1.0, (len(states), k))
        nuisance = np.sqrt(2.0) * np.cos(z @ self.nuisance_weights + self.nuisance_phases)
        return np.concatenate([signal, nuisance], axis=1).astype(np.float32)


def synthetic_embedding(state_dim: int, dim: int, *, signal_dims: int = 8, nuisance_latent: int = 32,
                        length_scale: float = 0.5, signal: str = "fourier", seed: int = 0) -> SyntheticEmbedding:
    """A fixed random embedding (see the module docstring); `dim == signal_dims` has no nuisance.

    `signal='linear'`: the signal coordinates are a random linear map of the state, W_s ~ N(0, 1 / state_dim)
    (every coordinate has unit mean square for a z-scored state, and the state can be read back exactly
    once signal_dims >= state_dim); 'fourier': the random Fourier features above, which only approximate it.
    """
    if signal not in ("fourier", "linear"):
        raise ValueError(f"synthetic_embedding: signal must be 'fourier' or 'linear', got {signal!r}")
    if state_dim < 1 or signal_dims < 1 or dim < signal_dims or nuisance_latent < 1 or length_scale <= 0:
        raise ValueError(f"synthetic_embedding: need state_dim, signal_dims, nuisance_latent >= 1, dim >= "
                         f"signal_dims and length_scale > 0; got {state_dim}, {signal_dims}, {nuisance_latent}, "
                         f"{dim}, {length_scale}")
    rng = np.random.default_rng(seed)
    n_nuisance = dim - signal_dims
    return SyntheticEmbedding(
        signal_weights=rng.normal(0.0, (state_dim ** -0.5) if signal == "linear" else 1.0 / length_scale,
                                  (state_dim, signal_dims)),
        signal_phases=rng.uniform(0.0, 2.0 * np.pi, signal_dims),
        nuisance_weights=rng.normal(0.0, 1.0 / length_scale, (nuisance_latent, n_nuisance)),
        nuisance_phases=rng.uniform(0.0, 2.0 * np.pi, n_nuisance),
        linear_signal=signal == "linear",
    )


def with_oracle(x: np.ndarray, states: np.ndarray, scale: float) -> np.ndarray:
    """The embedding with the low-dimensional state appended at `scale` (the thesis's 'oracle' object state)."""
    x, states = np.asarray(x), np.asarray(states)
    if len(x) != len(states):
        raise ValueError(f"with_oracle: {len(x)} embeddings but {len(states)} states")
    return np.concatenate([x, scale * states], axis=1).astype(np.float32)


def fit_remedy(remedy: Remedy, embed, states: np.ndarray, *, seed: int, project_k: int = 0,
               discriminant_dims: int = 16) -> dg.LinearTransform | dg.NormalisedProjection:
    """The remedy's linear map, estimated from two re-embeddings of `states` (nuisance seeds seed, seed + 1).

    whiten: by the within-state (nuisance) covariance (eq-ch10-whiten); project: the top `project_k` nuisance
    directions removed (default: as many as the nuisance has coordinates); discriminant: the
    `discriminant_dims` directions with the largest demonstration-to-nuisance variance ratio (eq-ch10-disc);
    demo_whiten: by the demonstrations' total covariance (a control: it whitens the signal along with the
    nuisance); sngp: a random projection to 32 coordinates and a layer norm (`diagnostics.sngp_projection`,
    the other control); none: the identity.
    """
    a, b = embed(states, seed), embed(states, seed + 1)
    if remedy == "none":
        return dg.LinearTransform(np.eye(a.shape[1]), "none")
    if remedy == "sngp":
        return dg.sngp_projection(a.shape[1], 32, seed=seed)
    total = np.cov(np.asarray(a, np.float64), rowvar=False)
    if remedy == "demo_whiten":
        return dg.whitening(total)
    sigma = dg.within_state_covariance(a, b)
    if remedy == "whiten":
        return dg.whitening(sigma)
    if remedy == "project":
        return dg.project_out(sigma, project_k or int(np.sum(np.diag(sigma) > 1e-9)))
    if remedy == "discriminant":
        return dg.discriminant_projection(total, sigma, discriminant_dims)
    raise ValueError(f"unknown remedy {remedy!r}; expected one of {REMEDIES}")


class StandInEmbedding(NamedTuple):
    """A stand-in base policy's action-expert activations as an embedding of the raw state: `__call__(states,
    seed)` draws the flow noise from `seed` (`StandInPolicy.activations`)."""

    policy: Any  # csil_lite.base.standin.StandInPolicy
    layers: int | None = None

    def __call__(self, states: np.ndarray, seed) -> np.ndarray:
        cfg = self.policy.cfg
        noise = np.random.default_rng(seed).standard_normal((len(states), cfg.horizon, cfg.action_dim))
        return self.policy.activations(states, noise, layers=self.layers)


def _synthetic(cfg: EmbedConfig, state_dim: int) -> tuple[SyntheticEmbedding, bool]:
    return synthetic_embedding(state_dim, cfg.dim, signal_dims=cfg.signal_dims, nuisance_latent=cfg.nuisance_latent,
                               length_scale=cfg.length_scale, signal=cfg.signal, seed=cfg.seed), False


def _standin(cfg: EmbedConfig, state_dim: int) -> tuple[StandInEmbedding, bool]:
    from csil_lite.base.standin import load_standin

    policy = load_standin(cfg.source, seed=cfg.seed)
    if policy.cfg.obs_dim != state_dim:
        raise ValueError(f"EmbedConfig.source = {cfg.source!r}: a stand-in for {policy.cfg.obs_dim}-dimensional "
                         f"states, but the task's have {state_dim}")
    return StandInEmbedding(policy, cfg.layers), True


# EmbedConfig.kind -> (embedding, whether it takes the raw state): chosen when a run is configured
EMBEDDINGS = {"synthetic": _synthetic, "standin": _standin}


class StateView(NamedTuple):
    """What a policy sees of a state vector under an `EmbedConfig`: z-scored by the demonstrations' statistics,
    embedded with a fresh nuisance draw, through the remedy and a scalar `scale` (the demonstrations' embeddings
    then have unit mean square per coordinate, whatever the remedy did to their size: a remedy changes the
    geometry, not the input's scale against the network's initialisation), with the oracle appended."""

    embed: SyntheticEmbedding | StandInEmbedding
    mean: np.ndarray  # [state_dim]
    std: np.ndarray  # [state_dim]
    transform: dg.LinearTransform | dg.NormalisedProjection
    oracle_scale: float | None
    scale: float = 1.0
    raw_input: bool = False  # the embedding normalises the state itself (a stand-in): hand it the raw state

    @property
    def dim(self) -> int:
        return self.transform.matrix.shape[1] + (0 if self.oracle_scale is None else len(self.mean))

    def __call__(self, states: np.ndarray, seed: int) -> np.ndarray:
        z = (np.asarray(states, np.float64) - self.mean) / self.std
        x = np.float32(self.scale) * self.transform(self.embed(states if self.raw_input else z, seed))
        return x if self.oracle_scale is None else with_oracle(x, z, self.oracle_scale)


def state_view(cfg: EmbedConfig, demo_states: np.ndarray, *, seed: int = 0) -> StateView:
    """The view of `cfg` for a task whose demonstrated states are `demo_states` [N, state_dim]: normalisation
    from them, the embedding from `cfg.seed`, the remedy fitted on `cfg.remedy_pairs` re-embedding pairs of them
    (cycled), nuisance seeds from `seed`."""
    demo_states = np.asarray(demo_states, np.float64)
    if demo_states.ndim != 2 or len(demo_states) < 2:
        raise ValueError(f"state_view: expected demonstrated states [N >= 2, d], got {demo_states.shape}")
    mean, std = demo_states.mean(axis=0), demo_states.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant coordinate is centred, not divided by zero
    embed, raw_input = EMBEDDINGS[cfg.kind](cfg, demo_states.shape[1])
    pairs = np.resize(demo_states, (cfg.remedy_pairs, demo_states.shape[1]))
    pairs = pairs if raw_input else (pairs - mean) / std
    transform = fit_remedy(cfg.remedy, embed, pairs, seed=seed, discriminant_dims=cfg.discriminant_dims)
    x = transform(embed(pairs, [seed, 5]))
    scale = float(1.0 / np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return StateView(embed, mean, std, transform, cfg.oracle_scale, scale, raw_input)


class EmbeddingEdge(NamedTuple):
    """An `EmbedConfig` at the environment's edge (eq-ch10-view; like `base.compose.BaseEdge`, the update never
    sees it):
    `wrap(env)` embeds every observation the env returns (the nuisance drawn from a generator reseeded by each
    `reset(seed=...)`, so an episode's embeddings depend on its seed only: exact resume, repeatable evaluation);
    `label(demos)` embeds the demonstrations' observations and next observations (independent draws)."""

    view: StateView
    seed: int = 0

    def wrap(self, env: Any) -> Any:
        return EmbeddedObservation(env, self.view, seed=self.seed)

    def label(self, demos: Any) -> Any:
        return demos._replace(obs=self.view(demos.obs, seed=[self.seed, 1]),
                              next_obs=self.view(demos.next_obs, seed=[self.seed, 2]))

    def reembed(self, states: np.ndarray, seed: int) -> np.ndarray:
        """`states` as the policy would see them with another nuisance draw (`seed`)."""
        return self.view(states, seed=[self.seed, 6, seed])


class NoEmbedding(NamedTuple):
    """The state as it is."""

    def wrap(self, env: Any) -> Any:
        return env

    def label(self, demos: Any) -> Any:
        return demos

    def reembed(self, states: np.ndarray, seed: int) -> np.ndarray:
        return np.asarray(states, np.float32)


def embedding_edge(cfg: EmbedConfig, demo_states, *, seed: int = 0) -> EmbeddingEdge | NoEmbedding:
    """What a run does to observations for `cfg`; `demo_states`: a callable returning the raw demonstrated
    states (called only when there is an embedding to fit)."""
    if cfg.kind == "none":
        return NoEmbedding()
    return EmbeddingEdge(state_view(cfg, demo_states(), seed=seed), seed)


class EmbeddedObservation(gym.ObservationWrapper):
    """Every observation of `env` through a `StateView` (see `EmbeddingEdge`)."""

    def __init__(self, env: Any, view: StateView, *, seed: int = 0) -> None:
        super().__init__(env)
        self.view, self._seed = view, seed
        self._rng = np.random.default_rng([seed, 3])
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (view.dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([self._seed, 4, seed])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self.view(np.asarray(observation)[None], seed=int(self._rng.integers(2**63)))[0]
