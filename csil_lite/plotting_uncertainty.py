"""Plots of predictive uncertainty and of reward landscapes, shared by the HetStat and coherent-reward chapters.

Everything here is about *looking at* a trained policy: predictive bands in action space, std maps over a 2-D
state grid, and coherent-reward landscapes r(s, a). The numerical parts (evaluating a policy on a grid) are
jitted batch calls of library functions; the plotting parts return the artists they create so that tests (and
readers) can inspect them without comparing pixels.

Conventions: grids are `[n_y, n_x]` arrays (rows follow the vertical axis) so that `pcolormesh(xs, ys, grid)`
draws them the right way round; reward landscapes put the state on the horizontal axis and the action on the
vertical axis.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm

from csil_lite.coherent import Density, Variant, policy_reward


def _as_1d(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array (or [N, 1]), got shape {arr.shape}")
    return arr


def tanh_gaussian_band(mean: Any, std: Any, n_std: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mode and central band of tanh(N(mean, std^2)) in action space.

    tanh is monotone, so tanh(mean +- k std) are *exact* quantiles of the squashed distribution (k=2: the 2.3 %
    and 97.7 % quantiles); no sampling is needed and the band never leaves [-1, 1].
    """
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if mean.shape != std.shape:
        raise ValueError(f"tanh_gaussian_band: mean shape {mean.shape} != std shape {std.shape}")
    if np.any(std < 0):
        raise ValueError(f"tanh_gaussian_band: std must be >= 0, min is {std.min()}")
    return np.tanh(mean), np.tanh(mean - n_std * std), np.tanh(mean + n_std * std)


def plot_predictive_band(
    ax: Axes,
    x: Any,
    mean: Any,
    std: Any,
    *,
    n_std: float = 2.0,
    data: tuple[Any, Any] | None = None,
    color: str | None = None,
    label: str | None = None,
    data_label: str = "demonstrations",
) -> dict[str, Any]:
    """Predictive mode tanh(mean) with the tanh(mean +- n_std std) band over a 1-D input.

    `mean`, `std` are the latent Gaussian's parameters at inputs `x` ([N] or [N, 1] each). `data=(x, a)` overlays
    the training pairs. Returns the created artists: 'line', 'band' and (if data) 'data'.
    """
    x = _as_1d("plot_predictive_band x", x)
    mean, std = _as_1d("plot_predictive_band mean", mean), _as_1d("plot_predictive_band std", std)
    if not (x.shape == mean.shape == std.shape):
        raise ValueError(f"plot_predictive_band: x {x.shape}, mean {mean.shape}, std {std.shape} must match")
    order = np.argsort(x)
    x, mean, std = x[order], mean[order], std[order]
    mode, lo, hi = tanh_gaussian_band(mean, std, n_std)
    artists: dict[str, Any] = {}
    if data is not None:
        dx, da = _as_1d("data x", data[0]), _as_1d("data actions", data[1])
        artists["data"] = ax.scatter(dx, da, s=4, c="0.3", alpha=0.5, zorder=1, label=data_label)
    (artists["line"],) = ax.plot(x, mode, color=color, lw=1.8, zorder=3, label=label)
    artists["band"] = ax.fill_between(
        x, lo, hi, color=artists["line"].get_color(), alpha=0.25, lw=0, zorder=2,
        label=None if label is None else f"{label}: ±{n_std:g} std (latent)",
    )
    ax.set_ylim(-1.05, 1.05)
    return artists


def grid_points(
    xlim: tuple[float, float], ylim: tuple[float, float], n: int | tuple[int, int] = 81
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular 2-D grid: (xs [n_x], ys [n_y], points [n_y * n_x, 2]) with points in row-major [y, x] order."""
    n_x, n_y = (n, n) if isinstance(n, int) else n
    if n_x < 2 or n_y < 2:
        raise ValueError(f"grid_points: need at least 2 points per axis, got {(n_x, n_y)}")
    xs = np.linspace(*xlim, n_x, dtype=np.float32)
    ys = np.linspace(*ylim, n_y, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=-1)


def std_on_grid(policy, params, xs: Any, ys: Any, action_index: int = 0) -> np.ndarray:
    """Latent std of action dimension `action_index` on the 2-D state grid xs x ys, as [n_y, n_x]."""
    xs, ys = _as_1d("std_on_grid xs", xs), _as_1d("std_on_grid ys", ys)
    gx, gy = np.meshgrid(xs, ys)
    obs = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=-1), jnp.float32)
    _, std = jax.jit(policy.apply)(params, obs)
    if not 0 <= action_index < std.shape[-1]:
        raise ValueError(f"std_on_grid: action_index {action_index} out of range for action_dim {std.shape[-1]}")
    return np.asarray(std[:, action_index]).reshape(len(ys), len(xs))


def reward_landscape(
    policy,
    params,
    obs: Any,
    actions: Any,
    *,
    variant: Variant = "pos",
    scale: float = 1.0,
    density: Density = "action",
) -> np.ndarray:
    """Coherent reward r(s, a) for every pair of `obs` [N_s, obs_dim] and `actions` [N_a, act_dim]: [N_a, N_s].

    1-D state x 1-D action: pass the state grid as [N_s, 1] and the action grid as [N_a, 1]. An action-space
    slice at one state: pass obs [1, obs_dim] and a grid of actions [N_a, act_dim].
    """
    obs = jnp.asarray(obs, jnp.float32)
    actions = jnp.asarray(actions, jnp.float32)
    if obs.ndim != 2 or actions.ndim != 2:
        raise ValueError(f"reward_landscape: expected obs [N_s, obs_dim] and actions [N_a, act_dim], got {obs.shape}, {actions.shape}")
    n_s, n_a = obs.shape[0], actions.shape[0]
    all_obs = jnp.broadcast_to(obs[None], (n_a, n_s, obs.shape[1])).reshape(-1, obs.shape[1])
    all_act = jnp.broadcast_to(actions[:, None], (n_a, n_s, actions.shape[1])).reshape(-1, actions.shape[1])
    fn = jax.jit(lambda p, o, a: policy_reward(policy, p, o, a, variant=variant, scale=scale,
                                                   density=density))
    return np.asarray(fn(params, all_obs, all_act)).reshape(n_a, n_s)


def plot_heatmap(
    ax: Axes,
    xs: Any,
    ys: Any,
    values: Any,
    *,
    data: Any = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    center: float | None = None,
    colorbar: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """`values` [n_y, n_x] over xs x ys, with optional data points [N, 2] overlaid.

    With `center`, a diverging norm puts that value at the middle of the colour map. Values outside
    [vmin, vmax] are drawn in the end colours and the colour bar gets an arrow on that side, so saturation is
    visible rather than silent. Returns 'mesh', optionally 'data' and 'colorbar'.
    """
    xs, ys = _as_1d("plot_heatmap xs", xs), _as_1d("plot_heatmap ys", ys)
    values = np.asarray(values)
    if values.shape != (len(ys), len(xs)):
        raise ValueError(f"plot_heatmap: values shape {values.shape}, expected (len(ys), len(xs)) = {(len(ys), len(xs))}")
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if vmin is None else vmin
    hi = float(finite.max()) if vmax is None else vmax
    if center is not None:
        lo, hi = min(lo, center - 1e-6), max(hi, center + 1e-6)
        norm: Normalize = TwoSlopeNorm(vcenter=center, vmin=lo, vmax=hi)
    else:
        norm = Normalize(vmin=lo, vmax=hi)
    artists: dict[str, Any] = {"mesh": ax.pcolormesh(xs, ys, values, cmap=cmap, norm=norm, shading="auto")}
    if data is not None:
        pts = np.asarray(data)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"plot_heatmap: data must be [N, 2] points, got shape {pts.shape}")
        artists["data"] = ax.scatter(pts[:, 0], pts[:, 1], s=3, c="white", edgecolors="k", linewidths=0.2, alpha=0.7)
    if colorbar:
        below, above = bool(np.any(finite < lo)), bool(np.any(finite > hi))
        extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}
        artists["colorbar"] = ax.figure.colorbar(artists["mesh"], ax=ax, extend=extend[(below, above)], label=label)
    return artists


def plot_std_heatmap(
    ax: Axes, xs: Any, ys: Any, std: Any, *, data: Any = None, vmax: float = 0.87, colorbar: bool = True
) -> dict[str, Any]:
    """Latent std map on [0, vmax] (HetStat's std never exceeds sqrt(0.75) ~= 0.866)."""
    return plot_heatmap(ax, xs, ys, std, data=data, cmap="magma", vmin=0.0, vmax=vmax, colorbar=colorbar, label="latent std")


def plot_reward_landscape(
    ax: Axes,
    states: Any,
    actions: Any,
    reward: Any,
    *,
    data: tuple[Any, Any] | None = None,
    vmin: float = -6.0,
    vmax: float | None = None,
    colorbar: bool = True,
) -> dict[str, Any]:
    """Heatmap of r(s, a) [N_a, N_s] with state on x and action on y; zero is white (red > 0, blue < 0).

    Rewards of unlikely actions run to -inf-like values (hundreds of nats), so the colour scale is cut at
    `vmin` and the colour bar shows the cut with an arrow. `data=(states, actions)` overlays demonstrations.
    """
    reward = np.asarray(reward)
    pts = None
    if data is not None:
        pts = np.stack([_as_1d("data states", data[0]), _as_1d("data actions", data[1])], axis=-1)
    finite = reward[np.isfinite(reward)]
    hi = max(float(finite.max()), 1e-3) if vmax is None else vmax
    out = plot_heatmap(
        ax, states, actions, reward, data=pts, cmap="RdBu_r", vmin=vmin, vmax=hi, center=0.0,
        colorbar=colorbar, label="r(s, a)",
    )
    ax.set_xlabel("state s")
    ax.set_ylabel("action a")
    return out


def new_figure(n_rows: int, n_cols: int, size: tuple[float, float] = (3.2, 2.6), **kwargs: Any):
    """Small-multiples figure with panel size `size` (width, height) in inches; returns (fig, axes [r, c])."""
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(size[0] * n_cols, size[1] * n_rows), squeeze=False, constrained_layout=True, **kwargs
    )
    return fig, axes
