"""Critic heads: what a critic's raw output means, as a small protocol shared by every loss that uses a critic.

- `value(out)`: the Q-value(s) the output stands for: [batch], or [ensemble, batch] for an ensemble;
- `loss(out, target)`: the loss of the output towards a Bellman target (a number for the scalar head, a
  distribution on the support for the categorical one); mean over the batch, summed over an ensemble;
- `bellman_target(reward, terminal, next_out, next_kl, gamma=, beta=, ceiling=)`: the soft Bellman target of
  eq-ch5-online in the head's own form, built from the *lower* of an ensemble's target critics.

Categorical (XQC-style, for CSIL++): `atoms` is a fixed, strictly increasing support (non-uniform: placed by
quantiles of returns estimated from the demonstrations, `quantile_support`); the target shifts every atom through
the Bellman map, clips it to the support and splits its probability between the two neighbouring atoms
(`project`), and the loss is the cross-entropy.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.losses import soft_bellman_target


def ensemble_min(q: jax.Array, batch_ndim: int = 1) -> jax.Array:
    """The lower of an ensemble's Q-values (a leading ensemble axis beyond `batch_ndim`), or Q itself.
    Book: eq-ch6-twin."""
    return jnp.min(q, axis=0) if q.ndim > batch_ndim else q


def _reduce_ensemble(per_critic: jax.Array, batch_ndim: int) -> jax.Array:
    """Sum a per-critic quantity over a leading ensemble axis, if there is one."""
    return jnp.sum(per_critic) if per_critic.ndim > batch_ndim else per_critic


class ScalarHead(NamedTuple):
    """The critic's output is Q itself; the loss is the squared Bellman error."""

    def setup(self) -> dict:
        """What preparation resolved (nothing for a scalar head): stored with a run, read by `with_setup`."""
        return {}

    def with_setup(self, values: dict) -> "ScalarHead":
        return self

    def value(self, out: jax.Array) -> jax.Array:
        return out

    def loss(self, out: jax.Array, target: jax.Array) -> jax.Array:
        if out.ndim == 1:
            return jnp.mean(jnp.square(out - target))
        return jnp.sum(jnp.mean(jnp.square(out - target), axis=-1))

    def target_value(self, target: jax.Array) -> jax.Array:
        return target

    def sarsa_target(self, reward, terminal, next_out, gamma: float) -> jax.Array:
        """eq-ch5-sarsa's y = r + gamma (1 - d) Qbar(s', a'_demo) (the lower critic of an ensemble)."""
        return reward + gamma * (1.0 - terminal) * ensemble_min(self.value(next_out))

    def bellman_target(self, reward, terminal, next_out, next_kl, *, gamma: float, beta: float, ceiling: float):
        return soft_bellman_target(reward, terminal, ensemble_min(self.value(next_out)), next_kl, gamma=gamma,
                                   beta=beta, ceiling=ceiling)


def project(values: jax.Array, probs: jax.Array, atoms: jax.Array) -> jax.Array:
    """Project the distribution {values_j with mass probs_j} onto the (non-uniform, increasing) `atoms`.

    values, probs: [..., J]; atoms: [K]. Each value is clipped to [atoms[0], atoms[-1]] and its mass split
    linearly between its two neighbouring atoms, so the total mass and (for in-range values) the mean are kept.
    Bins are found with `searchsorted` and their own widths, not (v - v_min) / delta, which assumes a uniform grid.
    Book: eq-ch6-project.
    """
    k = atoms.shape[0]
    y = jnp.clip(values, atoms[0], atoms[-1])
    lo = jnp.clip(jnp.searchsorted(atoms, y, side="right") - 1, 0, k - 2)
    z_lo, z_hi = atoms[lo], atoms[lo + 1]
    w_hi = (y - z_lo) / (z_hi - z_lo)
    mass_hi, mass_lo = probs * w_hi, probs * (1.0 - w_hi)
    onehot = lambda i: jax.nn.one_hot(i, k, dtype=probs.dtype)  # noqa: E731
    return jnp.einsum("...j,...jk->...k", mass_lo, onehot(lo)) + jnp.einsum("...j,...jk->...k", mass_hi, onehot(lo + 1))


class CategoricalHead(NamedTuple):
    """Logits over a fixed support `atoms` (a tuple, so the head stays hashable and static)."""

    atoms: tuple[float, ...]

    @property
    def support(self) -> jax.Array:
        return jnp.asarray(self.atoms, jnp.float32)

    def setup(self) -> dict:
        """The resolved support, stored with a run (`with_setup` reads it back)."""
        return {"atoms": list(self.atoms)}

    def with_setup(self, values: dict) -> "CategoricalHead":
        return CategoricalHead(tuple(float(a) for a in values["atoms"]))

    def value(self, out: jax.Array) -> jax.Array:
        return jnp.sum(jax.nn.softmax(out, axis=-1) * self.support, axis=-1)

    def loss(self, out: jax.Array, target: jax.Array) -> jax.Array:
        """Cross-entropy of the logits to the projected target distribution, summed over an ensemble (book: eq-ch6-ce)."""
        ce = -jnp.sum(target * jax.nn.log_softmax(out, axis=-1), axis=-1)
        return _reduce_ensemble(jnp.mean(ce, axis=-1), 0)

    def target_value(self, target: jax.Array) -> jax.Array:
        """The expected value of a target distribution on the support."""
        return target @ self.support

    def sarsa_target(self, reward, terminal, next_out, gamma: float) -> jax.Array:
        """eq-ch5-sarsa on the support: the atoms shifted by r + gamma (1 - d) z_j and projected (no KL term)."""
        return self.bellman_target(reward, terminal, next_out, jnp.zeros_like(reward), gamma=gamma, beta=0.0,
                                   ceiling=0.0)

    def bellman_target(self, reward, terminal, next_out, next_kl, *, gamma: float, beta: float, ceiling: float):
        """Shift the atoms, not the mean: z_j -> r + gamma (1 - d)(z_j - beta KL), clipped and projected.

        With an ensemble, each sample takes the distribution of the target critic with the lower expected value.
        `ceiling` is implied by the support's top atom (clipping), so it is not used here.
        Book: eq-ch6-project.
        """
        probs = jax.nn.softmax(next_out, axis=-1)
        if probs.ndim == 3:  # [ensemble, batch, K]: per sample, the critic with the lower E[Q]
            lower = jnp.argmin(self.value(next_out), axis=0)
            probs = jnp.take_along_axis(probs, lower[None, :, None], axis=0)[0]
        shifted = reward[:, None] + gamma * (1.0 - terminal[:, None]) * (self.support[None, :] - beta * next_kl[:, None])
        return project(shifted, probs, self.support)

    def occupancy(self, out: jax.Array) -> jax.Array:
        """The predicted probability of each atom, averaged over the batch (and an ensemble's critics): [K]."""
        probs = jax.nn.softmax(out, axis=-1)
        return jnp.mean(probs.reshape(-1, probs.shape[-1]), axis=0)

    def bin_stats(self, out: jax.Array) -> dict[str, jax.Array]:
        """Where the predicted Q mass sits on the support (book: the support check of chapter 6).

        `q_bin_width`: the mass-weighted width of the atoms' cells (`cell_widths`) as a fraction of the support's
        range: if a bin of width f holds half the mass, this is at least f / 2. `q_top_bin_mass`: the largest
        mass on one atom; `q_top_bin_width`: that atom's cell width as a fraction of the range.
        """
        mass = self.occupancy(out)
        widths = jnp.asarray(cell_widths(self.atoms) / (self.atoms[-1] - self.atoms[0]), jnp.float32)
        return {"q_bin_width": mass @ widths, "q_top_bin_mass": jnp.max(mass),
                "q_top_bin_width": widths[jnp.argmax(mass)]}

    def clipped_fraction(self, reward, terminal, next_kl, *, gamma: float, beta: float) -> jax.Array:
        """Fraction of shifted atoms that fall outside the support (and are clipped onto its ends)."""
        shifted = reward[:, None] + gamma * (1.0 - terminal[:, None]) * (self.support[None, :] - beta * next_kl[:, None])
        z = self.support
        return jnp.mean((shifted < z[0]) | (shifted > z[-1]))


def discounted_returns(rewards: np.ndarray, last: np.ndarray, gamma: float) -> np.ndarray:
    """Monte-Carlo discounted return from every transition to the end of its episode (`last` marks the ends)."""
    out = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + (0.0 if last[t] else gamma * running)
        out[t] = running
    return out


def cell_widths(atoms) -> np.ndarray:
    """The width of the interval each atom stands for: halfway to its neighbours (half a gap at the two ends)."""
    z = np.asarray(atoms, np.float64)
    edges = np.concatenate([z[:1], (z[1:] + z[:-1]) / 2, z[-1:]])
    return np.diff(edges)


def quantile_support(returns: np.ndarray, n_atoms: int = 101, v_min: float = -8.0, v_max: float = 0.0,
                     uniform_weight: float = 0.5, min_gap_weight: float = 0.1) -> tuple[float, ...]:
    """Atoms at the quantiles of the returns' distribution mixed with a uniform one on [v_min, v_max].

    With F_G the empirical distribution of the returns clipped to [v_min, v_max], U the uniform distribution
    there and w = `uniform_weight`, the atoms are the quantiles of F = (1 - w) F_G + w U at n_atoms evenly spaced
    levels, the ends pinned to v_min and v_max; then mixed with the uniform grid,
    z = (1 - e) z_F + e linspace(v_min, v_max, n_atoms), e = `min_gap_weight`.

    - Two neighbouring atoms hold 1 / (n_atoms - 1) of F's mass, of which U holds w * gap / range: no gap exceeds
      range / (w (n_atoms - 1)) before the grid mix, (1 - e) / w + e times the uniform gap after it. Where the
      returns are, the atoms are dense; where they are not (the values an online policy's worse actions reach
      below the demonstrations' returns) the support still has bins of a few percent of the range, so a critic's
      mass cannot pile into one wide bin.
    - The grid mix keeps every gap at least e (v_max - v_min) / (n_atoms - 1): sparse rewards give returns with
      a few values, whose quantiles repeat (zero-width bins, hence NaN in the projection).
    Book: eq-ch6-support.
    """
    returns = np.asarray(returns, np.float64).ravel()
    if returns.size == 0 or not np.all(np.isfinite(returns)):
        raise ValueError(f"quantile_support: need finite returns, got {returns.size} values")
    if (not v_min < v_max or n_atoms < 2 or not 0.0 < uniform_weight <= 1.0
            or not 0.0 <= min_gap_weight <= 1.0):
        raise ValueError(f"quantile_support: need v_min < v_max, n_atoms >= 2, 0 < uniform_weight <= 1 and "
                         f"0 <= min_gap_weight <= 1, got {v_min}, {v_max}, {n_atoms}, {uniform_weight}, "
                         f"{min_gap_weight}")
    g = np.sort(np.clip(returns, v_min, v_max))
    grid = np.unique(np.concatenate([g, np.linspace(v_min, v_max, 20_001)]))
    cdf = ((1.0 - uniform_weight) * np.searchsorted(g, grid, side="right") / g.size
           + uniform_weight * (grid - v_min) / (v_max - v_min))  # strictly increasing on the grid
    levels = np.linspace(0.0, 1.0, n_atoms)
    z = np.interp(levels, cdf, grid)
    z[0], z[-1] = v_min, v_max
    z = (1.0 - min_gap_weight) * z + min_gap_weight * np.linspace(v_min, v_max, n_atoms)
    return tuple(float(x) for x in z)
