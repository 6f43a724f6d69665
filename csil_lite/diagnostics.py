"""Is a cloned policy less certain away from its demonstrations than on them? A check of HetStat health.

CSIL's coherent reward and its exploration rely on the BC policy's latent std being small where the
demonstrator acted and larger elsewhere. `uncertainty_diagnostic` measures exactly that for any policy module
whose `apply(params, obs)` returns the latent `(mean, std)` and which has a `max_std` property:

- **on the demonstrations**: the std at every demonstrated state;
- **off the data**: the std at states drawn *around* the demonstrations. By default each demonstrated state is
  perturbed by independent Gaussian noise whose scale is `scale` times that observation dimension's standard
  deviation over the demonstrations (`perturbed_states`); any other set of states can be passed instead, e.g.
  `uniform_states` in the demonstrations' bounding box;
- **the ceiling**: the supremum of the std the policy can output (`policy.max_std`; for HetStat
  sqrt(prior_variance) = sqrt(0.75) ~= 0.866, since its std is sqrt(prior_variance) * tanh(...)).

Each is summarised by medians, per action dimension and over all (state, dimension) pairs, and
`ratio = median off / median on`. A healthy HetStat has a ratio well above 1 and few demonstrated stds near
the ceiling; a policy whose std sits at the ceiling on the demonstrations has no uncertainty contrast to give.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

CEILING_TOL = 0.01  # a std within 1 % of the ceiling counts as "at the ceiling"


class UncertaintyDiagnostic(NamedTuple):
    std_on: np.ndarray  # [d_a] median std over the demonstrated states, per action dimension
    std_off: np.ndarray  # [d_a] median std over the off-data states, per action dimension
    median_on: float  # median over all demonstrated (state, dimension) pairs
    median_off: float  # median over all off-data (state, dimension) pairs
    ceiling: float  # supremum of the policy's std
    ratio: float  # median_off / median_on
    ratio_per_dim: np.ndarray  # [d_a] std_off / std_on
    at_ceiling_on: float  # fraction of demonstrated (state, dimension) pairs within 1 % of the ceiling
    off_description: str  # how the off-data states were drawn

    def summary(self) -> str:
        """One printable line."""
        return (f"std on demos {self.median_on:.3f} | "
                f"off data {self.median_off:.3f} ({self.off_description}) | "
                f"ceiling {self.ceiling:.3f} | off/on {self.ratio:.2f}x | "
                f"{self.at_ceiling_on:.0%} of demo stds at the ceiling")

    def per_dim_table(self, names: list[str] | None = None) -> str:
        """One line per action dimension: median std on and off the data and their ratio."""
        names = names or [f"a[{d}]" for d in range(len(self.std_on))]
        if len(names) != len(self.std_on):
            raise ValueError(f"per_dim_table: {len(names)} names for {len(self.std_on)} action dimensions")
        rows = [f"{'dim':>10s}  {'on demos':>8s}  {'off data':>8s}  {'off/on':>6s}"]
        rows += [f"{n:>10s}  {a:8.3f}  {b:8.3f}  {r:6.2f}"
                 for n, a, b, r in zip(names, self.std_on, self.std_off, self.ratio_per_dim)]
        return "\n".join(rows)


def perturbed_states(obs: np.ndarray, *, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Each row of `obs` plus N(0, (scale * std_j)^2) noise in observation dimension j.

    std_j is the standard deviation of dimension j over `obs` (a constant dimension is not perturbed), so the
    perturbation is in units of how much the demonstrations themselves vary along each dimension.
    """
    obs = np.asarray(obs, np.float32)
    if obs.ndim != 2 or obs.shape[0] < 2:
        raise ValueError(f"perturbed_states: expected obs [N >= 2, obs_dim], got shape {obs.shape}")
    if scale < 0:
        raise ValueError(f"perturbed_states: scale must be >= 0, got {scale}")
    noise = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), obs.shape, jnp.float32))
    return obs + np.float32(scale) * obs.std(axis=0, keepdims=True) * noise


def uniform_states(low: np.ndarray, high: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """`n` states uniform in the box [low, high] (e.g. the demonstrations' per-dimension min and max)."""
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    if low.shape != high.shape or low.ndim != 1 or np.any(high < low) or n < 1:
        raise ValueError(f"uniform_states: need 1-D low <= high of one shape and n >= 1, got {low}, {high}, "
                         f"{n}")
    u = np.asarray(jax.random.uniform(jax.random.PRNGKey(seed), (n, low.shape[0]), jnp.float32))
    return low + (high - low) * u


def _stds(policy, params, obs: np.ndarray) -> np.ndarray:
    _, std = policy.apply(params, jnp.asarray(obs, jnp.float32))
    std = np.asarray(std)
    if std.ndim != 2:
        raise ValueError(f"uncertainty_diagnostic: the policy's std has shape {std.shape}, "
                         "expected [N, action_dim]")
    return std


def uncertainty_diagnostic(
    policy,
    params,
    demo_obs: np.ndarray,
    off_obs: np.ndarray | None = None,
    *,
    scale: float = 1.0,
    seed: int = 0,
    off_description: str | None = None,
) -> UncertaintyDiagnostic:
    """Median std of `policy` on `demo_obs` vs at off-data states vs its ceiling (see the module docstring).

    `off_obs=None` draws `perturbed_states(demo_obs, scale=scale, seed=seed)`: one perturbed copy of every
    demonstrated state. Pass `off_obs` (and a short `off_description`) to use other states.
    """
    demo_obs = np.asarray(demo_obs, np.float32)
    if off_obs is None:
        off_obs = perturbed_states(demo_obs, scale=scale, seed=seed)
        off_description = off_description or f"demo states + {scale:g} x demo std noise"
    off_description = off_description or f"{len(off_obs)} given states"
    on, off = _stds(policy, params, demo_obs), _stds(policy, params, off_obs)
    ceiling = float(policy.max_std)
    std_on, std_off = np.median(on, axis=0), np.median(off, axis=0)
    median_on, median_off = float(np.median(on)), float(np.median(off))
    return UncertaintyDiagnostic(
        std_on=std_on,
        std_off=std_off,
        median_on=median_on,
        median_off=median_off,
        ceiling=ceiling,
        ratio=median_off / median_on,
        ratio_per_dim=std_off / std_on,
        at_ceiling_on=float(np.mean(on >= (1.0 - CEILING_TOL) * ceiling)),
        off_description=off_description,
    )


# --- When uncertainty collapses (chapter 10) --------------------------------------------------------------------
# The seed thesis (sec. 6.3) found HetStat's action entropy at online states indistinguishable from that at expert
# states once its input is a high-dimensional embedding. The functions below measure that gap, locate where in the
# network the geometry is lost, and implement the remedy chapter 10 tests (whitening by the nuisance covariance).


class EntropyGap(NamedTuple):
    gap: float  # mean sum_d log std_d at online states minus at expert states (nats): the latent entropy gap
    log_std_on: np.ndarray  # [d_a] mean log std per action dimension over the expert states
    log_std_off: np.ndarray  # [d_a] the same over the online states
    entropy_on: float  # mean latent Gaussian entropy at the expert states (nats)
    entropy_off: float  # the same at the online states

    def summary(self) -> str:
        return (f"latent entropy at expert states {self.entropy_on:.2f} nats, at online states "
                f"{self.entropy_off:.2f} nats: gap {self.gap:+.2f} nats")


def gaussian_entropy(std: np.ndarray) -> np.ndarray:
    """Entropy of a diagonal Gaussian with these stds ([..., d]): sum_d log std_d + d/2 log(2 pi e) (eq-ch10-gap)."""
    std = np.asarray(std, np.float64)
    return np.sum(np.log(std), axis=-1) + 0.5 * std.shape[-1] * np.log(2.0 * np.pi * np.e)


def entropy_gap(policy, params, expert_obs, online_obs) -> EntropyGap:
    """The thesis's collapse statistic (eq-ch10-gap): mean latent entropy at online minus at expert states.

    The latent Gaussian's entropy is sum_d log std_d plus a constant, so the gap is the difference of the mean
    log-std sums; it is the pre-tanh entropy gap (the tanh's log-Jacobian depends on the mean, not on the std's
    contrast). `policy.apply(params, obs)` must return the latent `(mean, std)`; `online_obs` are off-demonstration
    states, e.g. states the BC policy reaches in its own stochastic rollouts, or displaced states.
    """
    on, off = _stds(policy, params, expert_obs), _stds(policy, params, online_obs)
    h_on, h_off = gaussian_entropy(on), gaussian_entropy(off)
    return EntropyGap(gap=float(h_off.mean() - h_on.mean()), log_std_on=np.log(on).mean(axis=0),
                      log_std_off=np.log(off).mean(axis=0), entropy_on=float(h_on.mean()),
                      entropy_off=float(h_off.mean()))


def _nearest_distances(query: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from every row of `query` to its nearest row of `reference` (chunked, float64)."""
    ref = np.asarray(reference, np.float64)
    ref_sq = np.sum(ref * ref, axis=1)
    out = []
    for lo in range(0, len(query), chunk):
        q = np.asarray(query[lo:lo + chunk], np.float64)
        d2 = np.sum(q * q, axis=1)[:, None] + ref_sq[None, :] - 2.0 * q @ ref.T
        out.append(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
    return np.concatenate(out)


def nearest_neighbour_ratio(demo: np.ndarray, off: np.ndarray, *, holdout: float = 0.2, seed: int = 0) -> float:
    """How much farther off-demonstration points are from the demonstrations than demonstrations are (eq-ch10-nn).

    The demonstrations' rows are split at random into a reference set and a held-out `holdout` share; the ratio is
    the mean distance from the rows of `off` to their nearest reference row over the same for the held-out rows.
    About 1 when `off` is drawn like the demonstrations (off-data states are indistinguishable by distance at this
    stage of the network), well above 1 when they are displaced. Apply it to the raw input, the trunk's bottleneck
    and the stationary features (`stage_outputs`) to see where the contrast is lost.
    """
    demo, off = np.asarray(demo).reshape(len(demo), -1), np.asarray(off).reshape(len(off), -1)
    if demo.shape[1] != off.shape[1]:
        raise ValueError(f"nearest_neighbour_ratio: demo rows have {demo.shape[1]} dims, off rows {off.shape[1]}")
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"nearest_neighbour_ratio: holdout must lie in (0, 1), got {holdout}")
    n_held = int(round(holdout * len(demo)))
    if n_held < 1 or n_held >= len(demo) or len(off) < 1:
        raise ValueError(f"nearest_neighbour_ratio: {len(demo)} demo rows leave no held-out or no reference rows "
                         f"at holdout {holdout}, or no off rows ({len(off)})")
    perm = np.random.default_rng(seed).permutation(len(demo))
    held, ref = demo[perm[:n_held]], demo[perm[n_held:]]
    return float(_nearest_distances(off, ref).mean() / _nearest_distances(held, ref).mean())


def stage_outputs(policy, params, obs) -> dict[str, np.ndarray]:
    """A HetStat policy's input (after its encoder, if any), trunk bottleneck h and stationary features phi."""
    def run(module, o):
        x = module.encoder(o) if module.encoder is not None else o
        return x, module.trunk(x), module.stationary_features(x)

    x, h, phi = policy.apply(params, obs, method=run)
    return {"input": np.asarray(x), "bottleneck": np.asarray(h), "features": np.asarray(phi)}


def variance_spectrum(x: np.ndarray) -> np.ndarray:
    """Eigenvalues of the rows' covariance, largest first (an embedding's per-direction variance)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"variance_spectrum: expected [N >= 2, d], got shape {x.shape}")
    return np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]))[::-1], 0.0, None)


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2: the number of directions the variance is effectively spread over."""
    lam = np.asarray(eigenvalues, np.float64)
    return float(lam.sum() ** 2 / np.sum(lam * lam))


def within_state_covariance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The nuisance covariance from two embeddings of the same states with independent nuisance (eq-ch10-within).

    Row i of `a` and of `b` embed the same state (e.g. the same frame re-embedded with another flow-noise draw).
    If x = f(s) + n with n independent of s and drawn afresh each time, a - b = n - n' has covariance 2 Sigma_n,
    whatever f does to the state.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < 2:
        raise ValueError(f"within_state_covariance: expected two [N >= 2, d] arrays of one shape, got {a.shape}, "
                         f"{b.shape}")
    d = a - b
    d = d - d.mean(axis=0)
    return d.T @ d / (2.0 * (len(d) - 1))


class LinearTransform(NamedTuple):
    """x -> x @ matrix: a remedy applied to embeddings before the policy sees them (demonstrations and online)."""
    matrix: np.ndarray  # [d, d]
    description: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) @ self.matrix).astype(np.float32)


def whitening(covariance: np.ndarray, *, floor: float = 1e-3) -> LinearTransform:
    """The symmetric inverse square root of `covariance` (eq-ch10-whiten): nuisance directions get unit variance.

    Eigenvalues below `floor` times the mean eigenvalue are raised to it, so directions the nuisance does not
    move (where the task's signal may live) are scaled up by at most 1/sqrt(floor * mean), not divided by zero.
    An identity covariance gives the identity: the remedy is a no-op when the nuisance is already white.
    """
    cov = _symmetric(covariance, "whitening")
    lam, u = np.linalg.eigh(cov)
    lam = np.maximum(lam, floor * max(lam.mean(), np.finfo(np.float64).tiny))
    return LinearTransform(u @ np.diag(lam ** -0.5) @ u.T, f"whitening by the nuisance covariance (floor {floor:g})")


def project_out(covariance: np.ndarray, k: int) -> LinearTransform:
    """Removes the `k` largest-variance directions of `covariance` (the top nuisance directions); k=0: identity."""
    cov = _symmetric(covariance, "project_out")
    if not 0 <= k < len(cov):
        raise ValueError(f"project_out: k must lie in [0, {len(cov)}), got {k}")
    _, u = np.linalg.eigh(cov)
    top = u[:, len(cov) - k:]
    return LinearTransform(np.eye(len(cov)) - top @ top.T, f"top {k} nuisance directions projected out")


def _symmetric(covariance, name: str) -> np.ndarray:
    cov = np.asarray(covariance, np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not np.allclose(cov, cov.T, atol=1e-8 * np.abs(cov).max()):
        raise ValueError(f"{name}: expected a symmetric [d, d] covariance, got shape {cov.shape}")
    return cov


def exact_head_std(policy, params, fit_obs, query_obs) -> np.ndarray:
    """HetStat's std at `query_obs` with its learned Cholesky factor replaced by the exact Bayesian-linear posterior
    on the same stationary features (eq-ch10-exact): the fourth hypothesis's control.

    With Phi the features at `fit_obs` and a unit prior on the head's weights (the factor's initialisation, L = I),
    the posterior covariance is (Phi^T Phi / s^2 + I)^-1; its predictive variance v(f) = f^T (.)^-1 f goes through
    HetStat's bound, sqrt(prior) tanh(sqrt(min_var + v)). The noise s^2 is chosen (by bisection) so that the mean
    variance over `fit_obs` equals the learned head's there: both heads are then equally certain on the
    demonstrations, and any difference off them is the learned factor's. (A learned head less certain on `fit_obs`
    than the prior itself is matched by the prior, scaled, alone.) Returns [N, action_dim] stds.
    """
    import jax.numpy as jnp

    def feats(o):
        return np.asarray(stage_outputs(policy, params, jnp.asarray(o))["features"], np.float64)

    phi, f_query = feats(fit_obs), feats(query_obs)
    root_prior = np.sqrt(policy.prior_variance)
    _, std_fit = policy.apply(params, jnp.asarray(fit_obs))
    ratio = np.clip(np.asarray(std_fit, np.float64) / root_prior, 0.0, 1.0 - 1e-7)
    target = float(np.mean(np.maximum(np.arctanh(ratio) ** 2 - policy.min_variance, 0.0)))
    lam, u = np.linalg.eigh(phi.T @ phi)  # (Phi^T Phi / s^2 + I)^-1 = U diag(1 / (lam / s^2 + 1)) U^T
    proj_fit, proj_query = (phi @ u) ** 2, (f_query @ u) ** 2

    def variance(log_s2: float, proj: np.ndarray) -> np.ndarray:
        return proj @ (1.0 / (np.maximum(lam, 0.0) / np.exp(log_s2) + 1.0))

    prior_var = float(np.mean(np.sum(phi * phi, axis=1)))  # the limit s^2 -> inf: the prior alone
    if target >= prior_var:  # the learned head is less certain on the fit states than the unit prior: scale it
        v = np.sum(f_query * f_query, axis=1) * target / prior_var
    else:
        lo, hi = -30.0, 30.0  # the mean variance grows with the noise: bisect on log s^2
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if variance(mid, proj_fit).mean() < target else (lo, mid)
        v = variance(0.5 * (lo + hi), proj_query)
    std = root_prior * np.tanh(np.sqrt(policy.min_variance + v))
    return np.repeat(std[:, None], np.shape(std_fit)[-1], axis=1)


def discriminant_projection(total: np.ndarray, within: np.ndarray, k: int, *, floor: float = 1e-3
                            ) -> LinearTransform:
    """The `k` directions with the largest ratio of the demonstrations' variance to the nuisance's (eq-ch10-disc).

    Whitening by `within` (the nuisance covariance, `whitening` with its floor) makes the nuisance isotropic;
    the top-k principal directions of `total` (the demonstrations' covariance) in those coordinates are then
    the generalised eigenvectors of (total, within), Fisher's discriminant with states as the classes. The map
    is [d, k]: the policy sees k coordinates in which the nuisance has unit variance and the signal the most.
    """
    total, within = _symmetric(total, "discriminant_projection"), _symmetric(within, "discriminant_projection")
    if total.shape != within.shape or not 1 <= k <= len(total):
        raise ValueError(f"discriminant_projection: covariances {total.shape} and {within.shape}, k = {k}: "
                         f"expected one shape and 1 <= k <= d")
    white = whitening(within, floor=floor).matrix
    _, u = np.linalg.eigh(white.T @ total @ white)
    return LinearTransform(white @ u[:, ::-1][:, :k], f"top {k} demonstration-to-nuisance directions")


class NormalisedProjection(NamedTuple):
    """x -> LayerNorm(x @ matrix) (no learned scale or shift): the SNGP-style control of chapter 10."""
    matrix: np.ndarray  # [d, k]
    description: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, np.float64) @ self.matrix
        return ((y - y.mean(axis=1, keepdims=True)) / (y.std(axis=1, keepdims=True) + 1e-6)).astype(np.float32)


def sngp_projection(d: int, k: int = 32, *, seed: int = 0) -> NormalisedProjection:
    """A random Gaussian projection to `k` coordinates (entries N(0, 1/k): distances kept in expectation, the
    Johnson-Lindenstrauss map) followed by a layer normalisation: what SNGP-style distance-aware features do to
    an input. It keeps the input's geometry, so it cannot restore a contrast the geometry has lost (a control)."""
    if k < 1 or d < 1:
        raise ValueError(f"sngp_projection: need d >= 1 and k >= 1, got {d}, {k}")
    rng = np.random.default_rng(seed)
    return NormalisedProjection(rng.normal(0.0, k ** -0.5, (d, k)), f"random projection to {k} + layer norm")
