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
