"""Tanh-squashed diagonal Gaussian policies with the reference's boundary handling, and their exact KL.

Demonstrations often contain actions at exactly ±1 (a closed gripper, a saturated joint). A plain tanh-Gaussian
gives them log-density ±inf. Following the reference (Acme's `TanhTransformedDistribution`), actions are clipped to
±`threshold` and beyond the threshold the density is replaced by the latent Gaussian's tail mass averaged over
the clipped interval of width `1 - threshold`. The density still integrates to one over [-1, 1].
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

THRESHOLD = 0.999


class ClippedTanhNormal(distrax.Transformed):
    """Scalar-event tanh(Normal(loc, scale)) whose log-prob is finite on the closed interval [-1, 1]."""

    def __init__(self, loc: jax.Array, scale: jax.Array, threshold: float = THRESHOLD):
        super().__init__(distrax.Normal(loc, scale), distrax.Tanh())
        self._threshold = threshold

    @property
    def loc(self) -> jax.Array:
        return self.distribution.loc

    @property
    def scale(self) -> jax.Array:
        return self.distribution.scale

    def log_prob(self, value: jax.Array) -> jax.Array:
        thr = self._threshold
        base = self.distribution
        u_thr = jnp.arctanh(thr)
        log_eps = jnp.log1p(-thr)
        # Tail masses of the latent Gaussian, spread uniformly over the clipped interval (width 1 - thr).
        log_left = base.log_cdf(-u_thr) - log_eps
        log_right = jax.scipy.stats.norm.logsf(u_thr, base.loc, base.scale) - log_eps
        a = jnp.clip(value, -thr, thr)
        u = jnp.arctanh(a)
        inside = base.log_prob(u) - jnp.log1p(-jnp.square(a))
        return jnp.where(a <= -thr, log_left, jnp.where(a >= thr, log_right, inside))

    def sample_and_log_prob(self, seed, sample_shape=()):  # noqa: D102 - same contract as distrax
        sample = self.sample(seed=seed, sample_shape=sample_shape)
        return sample, self.log_prob(sample)

    def mode(self) -> jax.Array:
        """tanh of the latent mean: the deterministic action used for evaluation."""
        return jnp.tanh(self.loc)


def tanh_normal(loc: jax.Array, scale: jax.Array, threshold: float = THRESHOLD) -> distrax.Independent:
    """Policy distribution over actions [..., d_a]; log-probs sum over the action dimensions."""
    if loc.shape != scale.shape:
        raise ValueError(f"tanh_normal: loc shape {loc.shape} != scale shape {scale.shape}")
    return distrax.Independent(ClippedTanhNormal(loc, scale, threshold), reinterpreted_batch_ndims=1)


def latent_log_prob(loc: jax.Array, scale: jax.Array, actions: jax.Array, threshold: float = THRESHOLD) -> jax.Array:
    """log N(atanh a; loc, scale), summed over the last axis: the log-density of the *latent* (pre-tanh) action.

    It differs from the action-space log-density by the tanh Jacobian, sum_d log(1 - a_d^2), which is what makes a
    wide tanh-Gaussian's action density peak near +-1 instead of at tanh(loc). Actions are clipped to
    +-`threshold` first, as in `ClippedTanhNormal`, so the value is finite on [-1, 1].
    """
    u = jnp.arctanh(jnp.clip(actions, -threshold, threshold))
    return jnp.sum(distrax.Normal(loc, scale).log_prob(u), axis=-1)


def latent_kl(loc_p: jax.Array, scale_p: jax.Array, loc_q: jax.Array, scale_q: jax.Array) -> jax.Array:
    """Exact KL(p || q) between two tanh-Gaussians sharing the tanh bijection, summed over the last axis.

    KL divergence is invariant under a shared invertible map, so it equals the KL of the latent diagonal
    Gaussians (the clipping only changes how densities are *reported* at the boundary, not the distributions).
    Book: eq-ch6-kl.
    """
    var_ratio = jnp.square(scale_p / scale_q)
    mean_term = jnp.square((loc_p - loc_q) / scale_q)
    return 0.5 * jnp.sum(var_ratio + mean_term - 1.0 - jnp.log(var_ratio), axis=-1)


def max_log_prob_per_dim(min_scale: float, threshold: float = THRESHOLD) -> float:
    """A strict upper bound on one action dimension's log-density, given the policy's std floor.

    Inside the clip, log N(atanh a) <= -log(sqrt(2 pi) min_scale) and the tanh Jacobian adds at most
    -log(1 - threshold^2); at the clip the averaged tail mass is at most 1 / (1 - threshold).
    """
    import math

    inside = -math.log(min_scale) - 0.5 * math.log(2 * math.pi) - math.log1p(-threshold**2)
    tail = -math.log1p(-threshold)
    return max(inside, tail)
