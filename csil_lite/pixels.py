"""From pixels (chapter 8): image demonstrations, what a camera encoder's spatial softmax looks at, and BC from
pixels with a held-out score.

Everything here calls the library's pieces (the scripted experts, `data.generate.add_images`, the encoders of
`nets.encoders`, `pretrain.bc.train_bc`); nothing learns differently from pixels than from states except the
encoder the configuration chose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.data.transitions import Transitions
from csil_lite.nets.encoders import NoAugmentation


def make_image_demos(task: str, n: int, out: str | Path, *, seed: int = 0, image_size: int = 84,
                     progress: bool = False) -> Path:
    """`n` scripted demonstrations of robosuite task `task` with both cameras rendered from the saved states at
    `image_size` (what `csil-lite demos generate --images` writes), as a robomimic HDF5 file at `out`."""
    from csil_lite.data import scripted
    from csil_lite.data.generate import add_images
    from csil_lite.data.robomimic import write_dataset
    from csil_lite.envs.robosuite import CAMERAS, make

    env = make(task, seed=seed)
    try:
        episodes = scripted.generate_episodes(task, n, seed, env=env, progress=progress)
        add_images(episodes, env, CAMERAS, image_size, progress=progress)
        env_args = env.env_args()
        env_args["env_kwargs"].update(camera_heights=image_size, camera_widths=image_size)
        write_dataset(out, episodes, env_args, seed=seed, compression="gzip")
    finally:
        env.close()
    return Path(out)


def split_episodes(demos: Transitions, n_held_out: int) -> tuple[Transitions, Transitions]:
    """(training rows, the last `n_held_out` episodes' rows): a held-out set of whole episodes."""
    ends = np.flatnonzero(demos.last)
    if not 0 < n_held_out < len(ends):
        raise ValueError(f"split_episodes: n_held_out must lie in [1, {len(ends) - 1}], got {n_held_out}")
    cut = int(ends[-n_held_out - 1]) + 1
    return demos.take(np.arange(cut)), demos.take(np.arange(cut, demos.size))


def mean_action_error(policy, params, demos: Transitions, batch: int = 256) -> float:
    """Mean squared error of the policy's mean action, tanh(mu(s)) (`policy.apply` returns the latent mean and std),
    against the demonstrated actions."""
    fn = jax.jit(lambda p, o: jnp.tanh(policy.apply(p, o)[0]))
    errs = []
    for i in range(0, demos.size, batch):
        rows = demos.take(np.arange(i, min(i + batch, demos.size)))
        errs.append(np.sum((np.asarray(fn(params, jax.tree.map(jnp.asarray, rows.obs))) - rows.action) ** 2, -1))
    return float(np.mean(np.concatenate(errs)))


class PixelBC(NamedTuple):
    params: Any
    losses: np.ndarray  # BC loss per step
    steps: np.ndarray  # where the held-out error was measured
    held_out: np.ndarray  # mean-action squared error on held-out episodes at `steps`
    seconds_per_step: float


def bc_from_pixels(policy, train: Transitions, held_out: Transitions, *, steps: int, seed: int = 0,
                   batch_size: int = 64, learning_rate: float = 1e-3, every: int = 100,
                   progress: bool = False, augment: Any = NoAugmentation()) -> PixelBC:
    """`train_bc` on image observations, the held-out mean-action error measured every `every` steps; `augment`: an
    augmentation component for the training minibatches (`nets.encoders.RandomShift`; default: none)."""
    import time

    from csil_lite.pretrain.bc import train_bc

    at, err = [], []

    def measure(done: int, params) -> None:
        at.append(done)
        err.append(mean_action_error(policy, params, held_out))

    t = time.perf_counter()
    bc = train_bc(policy, train.obs, train.action, steps=steps, seed=seed, batch_size=batch_size,
                  learning_rate=learning_rate, chunk=every, progress=progress, on_chunk=measure, augment=augment)
    elapsed = time.perf_counter() - t
    return PixelBC(bc.params, np.asarray(bc.losses), np.asarray(at), np.asarray(err), elapsed / steps)


def camera_keypoints(policy_params, image_key: str, frames: np.ndarray, channels=(16, 32, 64, 128),
                     keypoints: int = 32) -> np.ndarray:
    """The spatial-softmax keypoints [T, K, 2] (x along the width, y down the height, both in [-1, 1]) of a
    per-camera encoder (`nets.encoders.ResNetKeypoints`) inside a policy's params, for frames [T, H, W, 3]."""
    from csil_lite.nets.encoders import ResNetKeypoints

    try:
        cam = policy_params["params"]["encoder"][f"camera_{image_key}"]
    except KeyError:
        raise ValueError(f"camera_keypoints: the policy has no per-camera encoder for {image_key!r}") from None
    out = ResNetKeypoints(tuple(channels), keypoints).apply({"params": cam}, jnp.asarray(frames))
    return np.asarray(out).reshape(len(frames), keypoints, 2)


__all__ = ["PixelBC", "bc_from_pixels", "camera_keypoints", "make_image_demos", "mean_action_error",
           "split_episodes"]
