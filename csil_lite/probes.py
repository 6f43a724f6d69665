"""Critic probes: train an agent's update on replayed demonstration batches and watch its parameters.

`critic_probe` runs the agent's own update (`agents.core.update`, the function the online loop runs under jit)
on batches drawn uniformly from the demonstration transitions (s, a, s'),
`n_demo + n_online` rows per critic step and `utd` critic steps per update, with no environment interaction. It
measures the update's numerics, not learning: how the parameter norms move, how large one update is relative to
the parameters (the *effective learning rate*), and whether anything becomes non-finite. Chapter 6 runs it over
critic normalisations and heads; `benchmarks/soak_bn_wn.py` runs it for 20k updates.

Why the effective learning rate. A layer followed by batch (or layer) normalisation computes the same function
for W and c W (c > 0), so the loss is scale-invariant in W: its gradient is orthogonal to W and proportional to
1 / ||W||. Every step then *adds* to ||W|| (Pythagoras), and what matters for the function, the change of
direction, is ||dW|| / ||W||. With Adam the step size per coordinate is about the learning rate whatever the
gradient's scale, so the direction's step shrinks like lr / ||W|| as ||W|| grows. Weight normalisation as a
projection (`nets.critic.unit_fan_in`) keeps every fan-in at unit norm, so that ratio stays put.

Every checkpoint (every `every` updates) reports the norms at that point and the mean over the last `every`
updates of each one-update ratio ||theta_{t+1} - theta_t|| / ||theta_t||, for all critic params, for the critic's
hidden Dense kernels (the scale-invariant ones when followed by a normalisation), and for the actor. One jitted
`lax.scan` over `every` updates is compiled once per configuration and called `updates / every` times.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from csil_lite.agents.core import update

_SUMMED = ("radial_hidden", "tangent_hidden")  # per-interval sums; every other per-update metric is averaged


class ProbeTrace(NamedTuple):
    """Per checkpoint (arrays of length `updates // every`); `updates` counts updates (utd critic steps each)."""

    updates: np.ndarray  # update index at each checkpoint
    critic_steps: np.ndarray  # critic gradient steps at each checkpoint (updates * utd)
    critic_norm: np.ndarray  # ||theta|| of all critic params (the online ones)
    hidden_norm: np.ndarray  # ||W|| of the critic's hidden Dense kernels (all but the output layer)
    actor_norm: np.ndarray  # ||theta|| of the actor's params
    lr_critic: np.ndarray  # mean over the interval of ||theta_{t+1} - theta_t|| / ||theta_t||, all critic params
    lr_hidden: np.ndarray  # the same for the hidden Dense kernels
    lr_actor: np.ndarray  # the same for the actor
    radial_hidden: np.ndarray  # sum over the interval of 2 <W_{t+1} - W_t, W_t> (hidden kernels): eq-ch6-radial
    tangent_hidden: np.ndarray  # sum over the interval of ||W_{t+1} - W_t||^2; radial + tangent = the squared norm's gain
    critic_loss: np.ndarray  # mean over the interval of the Bellman loss (the head's: squared error or CE)
    q: np.ndarray  # mean Q on the batches over the interval
    clipped_frac: np.ndarray  # fraction of shifted atoms clipped onto the support's ends (NaN for a scalar head)
    finite: np.ndarray  # bool: every param, statistic and metric finite at the checkpoint
    initial_critic_norm: float  # the norms before the first update
    initial_hidden_norm: float
    initial_actor_norm: float
    utd: int
    seconds: float  # wall time of all chunks, the first (compiling) one included
    compile_seconds: float  # wall time of the first chunk minus that of the second (0 with one chunk)


def _sq(leaves) -> jax.Array:
    return sum((jnp.sum(jnp.square(x)) for x in leaves), jnp.zeros(()))


def _norm(tree) -> jax.Array:
    return jnp.sqrt(_sq(jax.tree.leaves(tree)))


def hidden_mask(params):
    """A tree like `params`, True at the kernel of every Dense layer except the last of its parent module (the
    output layer). Layers are named `Dense_0 ... Dense_L` by flax within a parent; the highest index is the output
    layer."""

    def walk(node):
        if not isinstance(node, dict):
            return jax.tree.map(lambda _: False, node)
        dense = sorted((k for k in node if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
        out = {k: walk(v) for k, v in node.items()}
        for k in dense[:-1]:
            out[k] = {**out[k], "kernel": True}
        return out

    return walk(params)


def hidden_kernels(params) -> list:
    """The leaves `hidden_mask` marks, in tree order. A leading ensemble axis is kept (the kernels of all critics
    of an ensemble are returned together)."""
    return [x for x, hidden in zip(jax.tree.leaves(params), jax.tree.leaves(hidden_mask(params))) if hidden]


def _rel_step(new, old) -> jax.Array:
    return _norm(jax.tree.map(jnp.subtract, new, old)) / _norm(old)


def _rel_step_hidden(new, old) -> jax.Array:
    a, b = hidden_kernels(new), hidden_kernels(old)
    if not b:
        return jnp.full((), jnp.nan)
    return jnp.sqrt(_sq([x - y for x, y in zip(a, b)])) / jnp.sqrt(_sq(b))


def _radial_and_step(new, old) -> tuple[jax.Array, jax.Array]:
    """(2 <dW, W>, ||dW||^2) over the hidden kernels for one update W -> W + dW: they sum to ||W + dW||^2 - ||W||^2
    exactly. The first is what a step adds to the squared norm beyond Pythagoras. Book: eq-ch6-radial."""
    a, b = hidden_kernels(new), hidden_kernels(old)
    if not b:
        return jnp.full((), jnp.nan), jnp.full((), jnp.nan)
    d = [x - y for x, y in zip(a, b)]
    return 2.0 * sum(jnp.sum(x * y) for x, y in zip(d, b)), _sq(d)


def tangent_projection() -> optax.GradientTransformation:
    """Removes from each update of a hidden Dense kernel its component along the kernel, per output unit (AdamP's
    projection, Heo et al. 2021, applied to every hidden kernel): u_j <- u_j - <u_j, w_j> w_j / ||w_j||^2 for each
    fan-in column w_j. Under batch norm those kernels are scale-invariant per unit, so the projected step changes
    only their direction and ||W + u||^2 = ||W||^2 + ||u||^2. Chain it after `optax.scale_by_adam()`; a probe
    control (`critic_probe(critic_tx=...)`), not a CSIL++ option. Book: eq-ch6-radial."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("tangent_projection needs the params (call tx.update(grads, state, params))")

        def project(u, w, hidden):
            if not hidden:
                return u
            along = jnp.sum(u * w, axis=-2, keepdims=True) / jnp.maximum(jnp.sum(w * w, axis=-2, keepdims=True),
                                                                        1e-30)
            return u - along * w

        return jax.tree.map(project, updates, params, hidden_mask(params)), state

    return optax.GradientTransformation(init, update)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_probe_chunk(agent, demos, every: int):
    """jit(chunk(state, key) -> (state, per-update metrics [every])): `every` updates on replayed demo batches."""
    cfg = agent.config
    rows, utd = cfg.n_demo + cfg.n_online, cfg.utd
    data = jax.tree.map(jnp.asarray, demos)
    n = data.size

    def one_update(state, key):
        k_idx, k_upd = jax.random.split(key)
        idx = jax.random.randint(k_idx, (utd, rows), 0, n)
        batch = jax.tree.map(lambda x: x[idx], data)
        new, m = update(agent, state, batch, k_upd)
        out = {"critic_loss": m["critic_loss"], "q": m["q"],
               "clipped_frac": m.get("clipped_frac", jnp.full((), jnp.nan)),
               "lr_critic": _rel_step(new.critic.params, state.critic.params),
               "lr_hidden": _rel_step_hidden(new.critic.params, state.critic.params),
               "lr_actor": _rel_step(new.actor.params, state.actor.params)}
        out["radial_hidden"], out["tangent_hidden"] = _radial_and_step(new.critic.params, state.critic.params)
        return new, out

    return jax.jit(lambda state, key: jax.lax.scan(one_update, state, jax.random.split(key, every)))


def critic_probe(setup, updates: int, every: int, *, seed: int = 0,
                 critic_tx: optax.GradientTransformation | None = None) -> ProbeTrace:
    """Train `setup`'s agent (a `loop.Setup`: agent, demonstrations, initial state) for `updates` updates on
    replayed demonstration batches; a checkpoint every `every` updates (see the module docstring). `critic_tx`
    replaces the critic's optimiser (fresh optimiser state) for a control such as Adam without momentum or with
    `tangent_projection`."""
    if updates < 1 or every < 1 or updates % every:
        raise ValueError(f"critic_probe: need updates >= 1 and every >= 1 with updates % every == 0, got "
                         f"updates={updates}, every={every}")
    chunk = make_probe_chunk(setup.agent, setup.demos, every)
    state, key = setup.state, jax.random.PRNGKey(seed)
    if critic_tx is not None:
        critic = state.critic
        state = state._replace(critic=critic.replace(tx=critic_tx, opt_state=critic_tx.init(critic.params)))
    initial = (float(_norm(state.critic.params)), float(jnp.sqrt(_sq(hidden_kernels(state.critic.params)))),
               float(_norm(state.actor.params)))
    rows: list[dict] = []
    times = []
    for c in range(updates // every):
        key, k = jax.random.split(key)
        t0 = time.perf_counter()
        state, m = chunk(state, k)
        m = jax.device_get(m)
        times.append(time.perf_counter() - t0)
        finite = bool(_all_finite(state)) and all(np.all(np.isfinite(v)) for name, v in m.items()
                                                   if name not in ("clipped_frac", "lr_hidden", *_SUMMED))
        rows.append({
            "updates": (c + 1) * every,
            "critic_norm": float(_norm(state.critic.params)),
            "hidden_norm": float(jnp.sqrt(_sq(hidden_kernels(state.critic.params)))),
            "actor_norm": float(_norm(state.actor.params)),
            **{name: float(np.sum(v) if name in _SUMMED else np.mean(v)) for name, v in m.items()},
            "finite": finite,
        })
    col = lambda name: np.array([r[name] for r in rows])  # noqa: E731
    utd = setup.agent.config.utd
    return ProbeTrace(
        updates=col("updates"), critic_steps=col("updates") * utd, critic_norm=col("critic_norm"),
        hidden_norm=col("hidden_norm"), actor_norm=col("actor_norm"), lr_critic=col("lr_critic"),
        lr_hidden=col("lr_hidden"), lr_actor=col("lr_actor"), critic_loss=col("critic_loss"), q=col("q"),
        clipped_frac=col("clipped_frac"), radial_hidden=col("radial_hidden"), tangent_hidden=col("tangent_hidden"),
        finite=col("finite").astype(bool), initial_critic_norm=initial[0],
        initial_hidden_norm=initial[1], initial_actor_norm=initial[2], utd=utd, seconds=float(sum(times)),
        compile_seconds=float(times[0] - times[1]) if len(times) > 1 else 0.0,
    )


__all__ = ["ProbeTrace", "critic_probe", "hidden_kernels", "make_probe_chunk", "tangent_projection"]


def rollout_returns(agent, state, task: str, episodes: int = 6, seed: int = 100) -> np.ndarray:
    """Discounted returns under the agent's reward from every step of `episodes` rollouts of its actor's own
    *sampled* actions on `task` (as the online phase acts): the values its critic must represent for the policy
    it starts from. Episode i starts from the environment seed `seed + i`; the actions' noise comes from
    PRNGKey(`seed`). Chapter 6 sets them against the categorical support."""
    from csil_lite.agents.core import make_act
    from csil_lite.data.transitions import Transitions
    from csil_lite.envs.registry import make_env
    from csil_lite.nets.heads import discounted_returns

    act, env, key = make_act(agent), make_env(task, seed=seed), jax.random.PRNGKey(seed)
    out = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        rows: dict[str, list] = {"obs": [], "action": [], "reward": [], "next_obs": [], "terminal": []}
        done = False
        while not done:
            key, k = jax.random.split(key)
            a = np.asarray(act(state.actor.variables, obs[None], k, False))[0]
            nxt, r, terminated, truncated, _ = env.step(a)
            for name, value in zip(rows, (obs, a, r, nxt, float(terminated))):
                rows[name].append(value)
            obs, done = nxt, terminated or truncated
        n = len(rows["reward"])
        arrays = {k: np.asarray(v, np.float32) for k, v in rows.items()}
        last = np.zeros(n, np.float32)
        last[-1] = 1.0
        batch = Transitions(arrays["obs"], arrays["action"], arrays["reward"], arrays["next_obs"],
                            arrays["action"], arrays["terminal"], last)
        rewards = np.asarray(agent.reward.of_batch(state.reward.variables, jax.tree.map(jnp.asarray, batch)))
        out.append(discounted_returns(rewards.astype(np.float64), last.astype(bool), agent.config.gamma))
    return np.concatenate(out)
