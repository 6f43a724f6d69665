"""Policies that output the latent Gaussian (mean, std) of a tanh-squashed action distribution.

`HetStatPolicy` is the CSIL policy: a trunk with a narrow bottleneck, a *stationary* periodic feature layer and a
heteroscedastic Bayesian-linear head. Because the features of a stationary kernel decorrelate away from the data,
the predictive variance returns to its prior level out of distribution: the policy "knows what it does not know",
which is what makes log q(a|s) - log p(a) a sensible reward away from the demonstrations.

Cost note: the head holds one D x D Cholesky factor per action dimension, so parameters and FLOPs scale as
d_a * D^2 (D=256, d_a=7 is ~230k parameters). The variance ||L_d^T f||^2 only touches the lower triangle,
so it is computed over column slabs of L (see `_SLAB_WIDTH`), skipping the zero upper blocks: ~(k+1)/(2k)
of the dense d_a * D^2 multiply-adds per sample for k slabs (0.56x at D=256), same numbers to float32
round-off. Lower `features` (D) for long action chunks or CPU previews.

The factors are rebuilt from the packed parameters on every call (a scatter): at D=256, d_a=7, batch 512 that
is ~0.4 ms of a ~16 ms forward on a shared 2-core CPU. Building them with a gather instead, or scattering
straight into contiguous per-slab matrices, measured no faster forward+backward (within noise), so the head
is bound by its multiply-adds, not by the rebuild; the saving is in calling it less often (`agents.core`).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.distributions import tanh_normal
from csil_lite.nets.layers import MLP, periodic_activation

MIN_VARIANCE = 1e-5
PRIOR_VARIANCE = 0.75
# Column-slab width of the triangular variance product: narrower slabs skip more zeros but make smaller
# matmuls. Of 128/64/32, 32 was fastest at D=256 on a shared 2-core CPU (forward, batch 512).
_SLAB_WIDTH = 32


def _slab_bounds(d: int) -> list[int]:
    """Column boundaries 0 = b_0 < ... < b_k = d of the slabs L[:, b_c:, b_c:b_{c+1}]."""
    k = max(1, d // _SLAB_WIDTH)
    return [round(c * d / k) for c in range(k + 1)]


def _encode(encoder: nn.Module | None, obs):
    """The features a network reads: its encoder's output, or `obs` itself for a network built without one."""
    return obs if encoder is None else encoder(obs)


def _check_obs(obs: jax.Array, name: str) -> None:
    if obs.ndim < 1:
        raise ValueError(f"{name}: observations must have a feature axis, got shape {obs.shape}")


class HetStatPolicy(nn.Module):
    """Heteroscedastic stationary policy (the reference's `hetstat{sin,tri,prelu}` architecture).

    Returns `(mean, std)` of the latent Gaussian, each [..., action_dim]. With `detach_std_features=True` the std
    is computed from stop-gradient features, so a loss on the std trains only the Cholesky factors (the
    "faithful" BC loss relies on this).
    """

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    bottleneck: int = 12
    features: int = 256
    activation: str = "triangle"
    layer_norm: bool = False
    init_log_input_scale: float = -5.0
    prior_variance: float = PRIOR_VARIANCE
    min_variance: float = MIN_VARIANCE
    encoder: nn.Module | None = None  # observation pytree -> features (`nets.encoders`); None: obs are features

    def setup(self) -> None:
        if self.features % 2:
            raise ValueError(f"HetStatPolicy.features must be even (feature pairs), got {self.features}")
        if self.action_dim < 1:
            raise ValueError(f"HetStatPolicy.action_dim must be >= 1, got {self.action_dim}")
        self.trunk = MLP((*self.hidden, self.bottleneck), activate_final=True, layer_norm=self.layer_norm)
        half = self.features // 2
        # Trained "random" frequencies and a trained per-input scale exp(l) (an inverse length-scale).
        self.frequencies = self.param("frequencies", nn.initializers.normal(1.0), (self.bottleneck, half))
        self.log_input_scale = self.param(
            "log_input_scale", nn.initializers.constant(self.init_log_input_scale), (self.bottleneck,)
        )
        self.mean_weights = self.param("mean_weights", nn.initializers.zeros, (self.features, self.action_dim))
        n_tril = self.features * (self.features + 1) // 2
        # Packed lower-triangular factors with exp on the diagonal: zeros map to the identity.
        self.cholesky_raw = self.param("cholesky_raw", nn.initializers.zeros, (self.action_dim, n_tril))
        self._act = periodic_activation(self.activation)

    def stationary_features(self, obs: jax.Array) -> jax.Array:
        h = self.trunk(obs)
        z = (h * jnp.exp(self.log_input_scale)) @ self.frequencies
        f = jnp.concatenate([self._act(z + jnp.pi / 4), self._act(z - jnp.pi / 4)], axis=-1)
        return f / jnp.sqrt(self.features)

    def cholesky_factors(self) -> jax.Array:
        """[action_dim, D, D] lower-triangular factors L_d of the head's 'posterior' covariance L_d L_d^T."""
        d = self.features
        rows, cols = np.tril_indices(d)
        i = np.arange(d)
        diag = i * (i + 3) // 2  # packed (row-major tril) position of entry (i, i)
        raw = self.cholesky_raw
        packed = raw.at[:, diag].set(jnp.exp(raw[:, diag]))
        return jnp.zeros((self.action_dim, d, d), raw.dtype).at[:, rows, cols].set(packed)

    def std_from_features(self, f: jax.Array) -> jax.Array:
        # v_d = f^T L_d L_d^T f = ||L_d^T f||^2 : Bayesian linear regression's predictive variance. Column j
        # of L_d^T f only sees rows i >= j of L_d, so slab c (columns b_c..b_{c+1}) needs only f[..., b_c:].
        chol, b = self.cholesky_factors(), _slab_bounds(self.features)
        var = sum(
            jnp.sum(jnp.square(jnp.einsum("...j,ajk->...ak", f[..., lo:], chol[:, lo:, lo:hi])), axis=-1)
            for lo, hi in zip(b[:-1], b[1:])
        )
        return jnp.sqrt(self.prior_variance) * jnp.tanh(jnp.sqrt(self.min_variance + var))

    def __call__(self, obs, detach_std_features: bool = False) -> tuple[jax.Array, jax.Array]:
        obs = _encode(self.encoder, obs)
        _check_obs(obs, "HetStatPolicy")
        f = self.stationary_features(obs)
        mean = f @ self.mean_weights
        std = self.std_from_features(jax.lax.stop_gradient(f) if detach_std_features else f)
        return mean, std

    @property
    def min_std(self) -> float:
        return float(np.sqrt(self.prior_variance) * np.tanh(np.sqrt(self.min_variance)))

    @property
    def max_std(self) -> float:
        """The ceiling: sqrt(prior_variance) * tanh(.) < sqrt(prior_variance) (~0.866), approached as v -> inf."""
        return float(np.sqrt(self.prior_variance))


class MLPPolicy(nn.Module):
    """Plain MLP Gaussian head with the reference's clamped log-std in [-5, 0] (for comparison with HetStat)."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    layer_norm: bool = False
    min_variance: float = MIN_VARIANCE
    encoder: nn.Module | None = None  # observation pytree -> features (`nets.encoders`); None: obs are features

    @nn.compact
    def __call__(self, obs, detach_std_features: bool = False) -> tuple[jax.Array, jax.Array]:
        obs = _encode(self.encoder, obs)
        _check_obs(obs, "MLPPolicy")
        h = MLP(tuple(self.hidden), activate_final=True, layer_norm=self.layer_norm)(obs)
        dense = lambda name: nn.Dense(  # noqa: E731
            self.action_dim, kernel_init=nn.initializers.orthogonal(), bias_init=nn.initializers.zeros, name=name
        )
        mean = dense("mean")(h)
        raw = dense("log_std")(jax.lax.stop_gradient(h) if detach_std_features else h)
        log_std = -5.0 + 5.0 * (jnp.tanh(raw) + 1.0) / 2.0
        return mean, jnp.sqrt(self.min_variance) + jnp.exp(log_std)

    @property
    def min_std(self) -> float:
        return float(np.sqrt(self.min_variance) + np.exp(-5.0))

    @property
    def max_std(self) -> float:
        """The ceiling: log-std clamped at 0, plus the variance floor's std."""
        return float(np.sqrt(self.min_variance) + 1.0)


def make_policy(kind: str, action_dim: int, **kwargs) -> nn.Module:
    """'hetstat' (CSIL default, triangle activation) or 'mlp'."""
    if kind == "hetstat":
        return HetStatPolicy(action_dim=action_dim, **kwargs)
    if kind == "mlp":
        return MLPPolicy(action_dim=action_dim, **kwargs)
    raise ValueError(f"unknown policy kind {kind!r}; choose 'hetstat' or 'mlp'")


def policy_distribution(policy: nn.Module, params, obs: jax.Array):
    """The tanh-Gaussian action distribution of `policy` at `obs`."""
    mean, std = policy.apply(params, obs)
    return tanh_normal(mean, std)


def scale_mean_head(params, factor: float):
    """`params` of a `HetStatPolicy` or `MLPPolicy` with the last layer of the latent *mean* multiplied by
    `factor` (HetStat's `mean_weights`; the MLP's `mean` kernel and bias); the std is untouched. factor 0 puts
    the latent mean at 0 everywhere (a residual that starts at exactly zero, ResFiT's zero-initialised layer)."""
    found = []

    def one(path, x):
        keys = [getattr(k, "key", None) for k in path]
        if keys[-1:] == ["mean_weights"] or (len(keys) >= 2 and keys[-2] == "mean" and keys[-1] in ("kernel", "bias")):
            found.append(keys)
            return x * factor
        return x

    out = jax.tree_util.tree_map_with_path(one, params)
    if not found:
        raise ValueError("scale_mean_head: no mean layer ('mean_weights' or 'mean/kernel') in these parameters")
    return out
