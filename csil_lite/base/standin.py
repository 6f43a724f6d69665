"""A small flow-matching action-chunk policy: the CPU stand-in for pi0.5, trained with pi0's recipe.

pi0's action expert learns a velocity field that carries Gaussian noise to an action chunk. With the chunk
``a`` ([H, d]), noise ``eps ~ N(0, I)`` and a time ``t in (0, 1]`` (t = 1 is pure noise):

    x_t = t * eps + (1 - t) * a,        target velocity  u = eps - a = d x_t / dt,

and the network v(x_t, t | obs) regresses u (mean squared error). Training times are drawn from
Beta(1.5, 1) (more weight near noise), scaled to [0.001, 1]. Sampling integrates dx/dt = v from t = 1 to 0 with
10 Euler steps of dt = -0.1. Time enters through sinusoidal features with periods 4e-3 ... 4.

Here the network is an MLP: the observation (z-scored low-dim state) goes through an encoder to an embedding
(`StandInPolicy.embedding`, used by the uncertainty-collapse chapter), computed once per chunk; the velocity MLP
sees [embedding, flattened x_t, time features]. Defaults: H = 10, 3 x 256 GELU layers, ~0.25 M parameters.

The stand-in is imperfect on purpose, in ways a caller controls: few demonstrations, few training steps, and
open-loop execution of whole chunks (`csil_lite.base.policy.ChunkExecutor`). Its success rate is measured, not
assumed: `csil-lite lbm train` prints it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from csil_lite.base.policy import LOWDIM_KEY, PROMPT_KEY, FieldSpec, check_observation

__all__ = [
    "CHECKPOINT_FILES",
    "FlowNet",
    "StandInConfig",
    "StandInPolicy",
    "TrainResult",
    "chunk_targets",
    "euler_sample",
    "flow_loss",
    "flow_path",
    "load_standin",
    "sample_times",
    "save_standin",
    "time_features",
    "train_standin",
]

CHECKPOINT_FILES = ("standin.json", "params.npz")
MODEL_NAME = "csil-lite-standin-fm"
# Keys a pi0.5 (LIBERO-style) client sends that the stand-in accepts and ignores.
IGNORED_KEYS: dict[str, FieldSpec] = {
    "observation/image": FieldSpec((-1, -1, 3), "|u1", required=False),
    "observation/wrist_image": FieldSpec((-1, -1, 3), "|u1", required=False),
    "observation/state": FieldSpec((-1,), "<f4", required=False),
    PROMPT_KEY: FieldSpec((), "str", required=False),
}


@dataclass(frozen=True)
class StandInConfig:
    """Shape of the stand-in. `horizon` is the chunk length H; `euler_steps` the sampler's steps."""

    obs_dim: int
    action_dim: int
    horizon: int = 10
    hidden: int = 256
    layers: int = 3
    embed_dim: int = 128
    time_dim: int = 32
    euler_steps: int = 10

    def __post_init__(self) -> None:
        for name in ("obs_dim", "action_dim", "horizon", "hidden", "layers", "embed_dim", "euler_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"StandInConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"StandInConfig.time_dim must be an even integer >= 2, got {self.time_dim!r}")


# -- the flow-matching recipe (pure functions) ---------------------------------------------------------------


def time_features(t: jax.Array, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> jax.Array:
    """Sinusoidal features of times `t` [B] -> [B, dim]: sin and cos at periods spaced geometrically."""
    fraction = jnp.linspace(0.0, 1.0, dim // 2)
    period = min_period * (max_period / min_period) ** fraction
    angle = t[:, None] * (2.0 * jnp.pi / period)[None, :]
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


def sample_times(key: jax.Array, n: int) -> jax.Array:
    """Training times t ~ Beta(1.5, 1), scaled to [0.001, 1] (pi0). Beta(1.5, 1) has the CDF t^1.5, so it is
    drawn exactly as U^(1/1.5) with U uniform (cheaper than `jax.random.beta`'s rejection sampler)."""
    return jax.random.uniform(key, (n,)) ** (1.0 / 1.5) * 0.999 + 0.001


def flow_path(actions: jax.Array, noise: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x_t, target velocity) for chunks `actions` and `noise` [B, H, d] at times `t` [B]:
    x_t = t * noise + (1 - t) * actions, u = noise - actions."""
    tt = t[:, None, None]
    return tt * noise + (1.0 - tt) * actions, noise - actions


def flow_loss(velocity: Callable[[jax.Array, jax.Array], jax.Array], actions: jax.Array, key: jax.Array
              ) -> jax.Array:
    """Mean squared error between `velocity(x_t, t)` and the target noise - actions (pi0's loss)."""
    k_noise, k_t = jax.random.split(key)
    noise = jax.random.normal(k_noise, actions.shape, actions.dtype)
    t = sample_times(k_t, actions.shape[0])
    x_t, target = flow_path(actions, noise, t)
    return jnp.mean(jnp.square(velocity(x_t, t) - target))


def euler_sample(velocity: Callable[[jax.Array, jax.Array], jax.Array], noise: jax.Array, steps: int = 10
                 ) -> jax.Array:
    """Integrate dx/dt = velocity(x, t) from x(1) = noise [B, H, d] to t = 0 in `steps` Euler steps."""
    dt = -1.0 / steps
    x = noise
    for i in range(steps):  # unrolled: 10 small steps, one XLA program
        t = jnp.full((noise.shape[0],), 1.0 - i / steps, noise.dtype)
        x = x + dt * velocity(x, t)
    return x


# -- the network ---------------------------------------------------------------------------------------------


class FlowNet(nn.Module):
    """Encoder obs -> embedding; velocity MLP [embedding, x_t, time features] -> velocity [B, H, d]."""

    cfg: StandInConfig

    def setup(self) -> None:
        c = self.cfg
        self.encoder = [nn.Dense(c.hidden), nn.Dense(c.embed_dim)]
        self.body = [nn.Dense(c.hidden) for _ in range(c.layers)]
        self.out = nn.Dense(c.horizon * c.action_dim)

    def embed(self, obs: jax.Array) -> jax.Array:
        return self.encoder[1](nn.gelu(self.encoder[0](obs)))

    def hidden(self, emb: jax.Array, x: jax.Array, t: jax.Array, layers: int | None = None) -> jax.Array:
        """The velocity MLP's activations after its first `layers` layers (None: all of them)."""
        h = jnp.concatenate([emb, x.reshape(x.shape[0], -1), time_features(t, self.cfg.time_dim)], axis=-1)
        for layer in self.body[:layers]:
            h = nn.gelu(layer(h))
        return h

    def velocity(self, emb: jax.Array, x: jax.Array, t: jax.Array) -> jax.Array:
        return self.out(self.hidden(emb, x, t)).reshape(x.shape)

    def __call__(self, obs: jax.Array, x: jax.Array, t: jax.Array) -> jax.Array:
        return self.velocity(self.embed(obs), x, t)


def init_params(cfg: StandInConfig, seed: int = 0) -> Any:
    net = FlowNet(cfg)
    b = 1
    return net.init(jax.random.PRNGKey(seed), jnp.zeros((b, cfg.obs_dim)),
                    jnp.zeros((b, cfg.horizon, cfg.action_dim)), jnp.ones((b,)))["params"]


def num_params(params: Any) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


# -- data ----------------------------------------------------------------------------------------------------


def chunk_targets(actions: np.ndarray, horizon: int) -> np.ndarray:
    """The chunk starting at every step of one episode's actions [T, d] -> [T, H, d]; past the end the last
    action repeats (what the demonstrator would keep doing; LeRobot pads the same way)."""
    actions = np.asarray(actions, np.float32)
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise ValueError(f"chunk_targets: expected actions [T > 0, d], got shape {list(actions.shape)}")
    T = actions.shape[0]
    idx = np.minimum(np.arange(T)[:, None] + np.arange(horizon)[None, :], T - 1)
    return actions[idx]


def episodes_to_chunks(episodes: Sequence[tuple[np.ndarray, np.ndarray]], horizon: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """[(obs [T, o], actions [T, d]), ...] -> (obs [N, o], chunks [N, H, d]) over all steps of all episodes."""
    if not episodes:
        raise ValueError("episodes_to_chunks: no episodes")
    obs = np.concatenate([np.asarray(o, np.float32) for o, _ in episodes])
    chunks = np.concatenate([chunk_targets(a, horizon) for _, a in episodes])
    return obs, chunks


# -- training ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    params: Any
    obs_mean: np.ndarray
    obs_std: np.ndarray
    losses: np.ndarray  # mean loss per logging block
    seconds: float
    steps: int


def train_standin(cfg: StandInConfig, obs: np.ndarray, chunks: np.ndarray, *, steps: int = 5000,
                  batch_size: int = 256, lr: float = 3e-4, seed: int = 0, block: int = 100,
                  progress: bool = True) -> TrainResult:
    """AdamW (cosine decay to 0) on the flow-matching loss; `block` steps per jitted `lax.scan` call."""
    from tqdm.auto import tqdm

    obs, chunks = np.asarray(obs, np.float32), np.asarray(chunks, np.float32)
    if obs.ndim != 2 or obs.shape[1] != cfg.obs_dim:
        raise ValueError(f"train_standin: obs shape {list(obs.shape)}, expected [N, {cfg.obs_dim}]")
    if chunks.shape != (obs.shape[0], cfg.horizon, cfg.action_dim):
        raise ValueError(f"train_standin: chunks shape {list(chunks.shape)}, expected "
                         f"[{obs.shape[0]}, {cfg.horizon}, {cfg.action_dim}]")
    if steps < 1:
        raise ValueError(f"train_standin: steps must be >= 1, got {steps}")
    mean, std = obs.mean(0), obs.std(0) + 1e-6
    obs_n = jnp.asarray((obs - mean) / std)
    data_chunks = jnp.asarray(chunks)
    net = FlowNet(cfg)
    params = init_params(cfg, seed)
    opt = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=1e-4)
    opt_state = opt.init(params)
    n = obs_n.shape[0]

    def loss_fn(p, o, a, key):
        emb = net.apply({"params": p}, o, method=FlowNet.embed)
        return flow_loss(lambda x, t: net.apply({"params": p}, emb, x, t, method=FlowNet.velocity), a, key)

    def one_step(carry, key):
        p, s = carry
        k_idx, k_loss = jax.random.split(key)
        idx = jax.random.randint(k_idx, (batch_size,), 0, n)
        loss, grads = jax.value_and_grad(loss_fn)(p, obs_n[idx], data_chunks[idx], k_loss)
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    @jax.jit
    def run_block(p, s, keys):
        (p, s), losses = jax.lax.scan(one_step, (p, s), keys)
        return p, s, losses.mean()

    key = jax.random.PRNGKey(seed + 1)
    losses, done = [], 0
    t0 = time.perf_counter()
    with tqdm(total=steps, desc="train stand-in", disable=not progress, leave=False) as bar:
        while done < steps:
            m = min(block, steps - done)
            key, sub = jax.random.split(key)
            params, opt_state, loss = run_block(params, opt_state, jax.random.split(sub, m))
            losses.append(float(loss))
            done += m
            bar.update(m)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return TrainResult(params, mean, std, np.asarray(losses, np.float32), time.perf_counter() - t0, steps)


# -- the policy ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _compiled(cfg: StandInConfig) -> tuple[Callable, Callable, Callable]:
    """Jitted (sample, embed, activations) for one network shape, shared by every policy of that shape."""
    net = FlowNet(cfg)

    def sample(p, obs_n, noise):
        emb = net.apply({"params": p}, obs_n, method=FlowNet.embed)
        x = euler_sample(lambda x, t: net.apply({"params": p}, emb, x, t, method=FlowNet.velocity), noise,
                         cfg.euler_steps)
        return jnp.clip(x, -1.0, 1.0)  # the policy's own action box, as the scripted experts clip theirs

    def activations(p, obs_n, noise, layers):
        emb = net.apply({"params": p}, obs_n, method=FlowNet.embed)
        t = jnp.ones((noise.shape[0],), noise.dtype)  # the sampler's first step: x = noise at t = 1
        return net.apply({"params": p}, emb, noise, t, layers, method=FlowNet.hidden)

    return (jax.jit(sample), jax.jit(lambda p, o: net.apply({"params": p}, o, method=FlowNet.embed)),
            jax.jit(activations, static_argnums=3))


class StandInPolicy:
    """A trained stand-in behind the `BasePolicy` protocol (and a batched `sample` for local use)."""

    def __init__(self, cfg: StandInConfig, params: Any, obs_mean: np.ndarray, obs_std: np.ndarray, *,
                 task: str | None = None, seed: int = 0, info: Mapping[str, Any] | None = None) -> None:
        self.cfg, self.params, self.task = cfg, params, task
        self.obs_mean = np.asarray(obs_mean, np.float32)
        self.obs_std = np.asarray(obs_std, np.float32)
        if self.obs_mean.shape != (cfg.obs_dim,) or self.obs_std.shape != (cfg.obs_dim,):
            raise ValueError(f"StandInPolicy: normalisation stats of shape {self.obs_mean.shape}/"
                             f"{self.obs_std.shape}, expected ({cfg.obs_dim},)")
        self.info = dict(info or {})
        self._rng = np.random.default_rng(seed)
        self._sample, self._embed, self._activations = _compiled(cfg)
        self.spec = {LOWDIM_KEY: FieldSpec((cfg.obs_dim,), "<f4"), **IGNORED_KEYS}

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "model": MODEL_NAME,
            "task": self.task or "",
            "action_horizon": self.cfg.horizon,
            "action_dim": self.cfg.action_dim,
            "lowdim_key": LOWDIM_KEY,
            "observation_spec": {k: f.to_wire() for k, f in self.spec.items()},
        }

    def _normalise(self, obs: np.ndarray) -> np.ndarray:
        return (np.asarray(obs, np.float32) - self.obs_mean) / self.obs_std

    def sample(self, obs: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """Chunks [B, H, d] for flat observations [B, obs_dim]; fresh noise from the policy's seeded rng."""
        obs = np.asarray(obs, np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.cfg.obs_dim:
            raise ValueError(f"stand-in: observations of shape {list(obs.shape)}, expected [B, {self.cfg.obs_dim}]")
        if noise is None:
            noise = self._rng.standard_normal((obs.shape[0], self.cfg.horizon, self.cfg.action_dim))
        return np.asarray(self._sample(self.params, self._normalise(obs), np.asarray(noise, np.float32)))

    def embedding(self, obs: np.ndarray) -> np.ndarray:
        """The encoder's embedding [B, embed_dim] of flat observations [B, obs_dim]."""
        return np.asarray(self._embed(self.params, self._normalise(np.atleast_2d(obs))))

    def activations(self, obs: np.ndarray, noise: np.ndarray, *, layers: int | None = None) -> np.ndarray:
        """The action expert's activations [B, hidden] at the sampler's first step (x = `noise` [B, H, d] at
        t = 1) after `layers` of its layers (None: all): like a large model's internal state, a function of the
        observation *and* of the flow noise, so re-embedding a state with another draw moves it (chapter 10)."""
        obs = np.atleast_2d(np.asarray(obs, np.float32))
        noise = np.asarray(noise, np.float32)
        if noise.shape != (obs.shape[0], self.cfg.horizon, self.cfg.action_dim):
            raise ValueError(f"stand-in activations: noise of shape {list(noise.shape)}, expected "
                             f"[{obs.shape[0]}, {self.cfg.horizon}, {self.cfg.action_dim}]")
        if layers is not None and not 0 <= layers <= self.cfg.layers:
            raise ValueError(f"stand-in activations: layers must lie in 0..{self.cfg.layers}, got {layers}")
        return np.asarray(self._activations(self.params, self._normalise(obs), noise, layers))

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        check_observation(obs, self.spec)
        return {"actions": self.sample(np.asarray(obs[LOWDIM_KEY], np.float32)[None])[0]}

    def reset(self) -> None:
        """The stand-in keeps no per-episode state."""

    def reseed(self, seed: int) -> None:
        """Restart the sampler's noise from `seed` (a fresh generator: a copy of this policy made with
        `copy.copy` and reseeded no longer shares its noise). `ChunkedBaseEnv.reset(seed=...)` calls it, so the
        base's noise in an episode is a function of the episode's seed (exact resume, repeatable evaluation)."""
        self._rng = np.random.default_rng(seed)


# -- checkpoints ---------------------------------------------------------------------------------------------


def _flatten(params: Any) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v) for path, v in flat}


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
    out: dict = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return out


def save_standin(directory: str | Path, policy: StandInPolicy) -> Path:
    """Write `standin.json` (config, normalisation, task, training facts) and `params.npz` into `directory`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"format": MODEL_NAME, "version": 1, "config": asdict(policy.cfg), "task": policy.task,
            "obs_mean": policy.obs_mean.tolist(), "obs_std": policy.obs_std.tolist(), "info": policy.info}
    np.savez_compressed(d / "params.npz", **_flatten(policy.params))
    (d / "standin.json").write_text(json.dumps(meta, indent=1) + "\n")
    return d


def load_standin(directory: str | Path, *, seed: int = 0) -> StandInPolicy:
    """The stand-in saved in `directory` by `save_standin`; `ValueError` naming the missing or bad file."""
    d = Path(directory)
    missing = [f for f in CHECKPOINT_FILES if not (d / f).is_file()]
    if missing:
        raise ValueError(f"{d}: not a stand-in checkpoint, missing {missing} (make one with `csil-lite lbm train`)")
    try:
        meta = json.loads((d / "standin.json").read_text())
        cfg = StandInConfig(**meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{d / 'standin.json'}: unreadable stand-in description ({type(e).__name__}: {e})"
                         ) from None
    with np.load(d / "params.npz") as z:
        params = _unflatten({k: z[k] for k in z.files})
    expected = jax.eval_shape(lambda: init_params(cfg))  # shapes only: no compilation
    shapes = jax.tree_util.tree_map(lambda x: tuple(x.shape), params)
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(expected) or shapes != \
            jax.tree_util.tree_map(lambda x: tuple(x.shape), expected):
        raise ValueError(f"{d / 'params.npz'}: parameters do not match the network in standin.json")
    return StandInPolicy(cfg, params, np.asarray(meta["obs_mean"]), np.asarray(meta["obs_std"]),
                         task=meta.get("task"), seed=seed, info=meta.get("info"))

