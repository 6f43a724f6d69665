"""One name -> environment lookup for every task in csil_lite.

Why a registry: configs, the CLI and the book refer to tasks by a string. Toy tasks are built here directly;
robosuite tasks are handed to `csil_lite.envs.robosuite.make`, imported only when such a task is requested, so
that toy-task users never pay for (or need) robosuite, mujoco and an OpenGL backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from csil_lite.envs import toy

TOY_TASKS: tuple[str, ...] = tuple(toy.TASK_SPECS)
# Kept in sync with `csil_lite.envs.robosuite.TASKS` (a test checks it); listed here so that naming a task
# does not import the simulator stack. The mimicgen scenes additionally need the user-installed `mimicgen`.
ROBOSUITE_TASKS: tuple[str, ...] = (
    "lift",
    "can",
    "square",
    "square_d0",
    "nut_assembly_d0",
    "coffee",
    "threading",
    "mug_cleanup",
    "hammer_cleanup",
)
TASKS: tuple[str, ...] = TOY_TASKS + ROBOSUITE_TASKS


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"unknown task {name!r}; known toy tasks: {list(TOY_TASKS)}, robosuite tasks: {list(ROBOSUITE_TASKS)}"
    )


def make_env(name: str, *, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """Build task `name`; `seed` fixes the first `reset()`; `kwargs` go to the task (e.g. `horizon=...`).

    Toy tasks accept the fields of `csil_lite.envs.toy.PointMassSpec` as overrides; robosuite tasks the
    keyword arguments of `csil_lite.envs.robosuite.make` (obs="state"|"image", image_size, horizon,
    placement).
    """
    if name in TOY_TASKS:
        return toy.PointMassEnv(name, seed=seed, **kwargs)
    if name in ROBOSUITE_TASKS:
        from csil_lite.envs import robosuite as rs  # lazy: pulls in mujoco / OpenGL setup

        return rs.make(name, seed=seed, **kwargs)
    raise _unknown(name)


def env_kwargs(obs: str, image_size: int) -> dict[str, Any]:
    """What `make_env` is told besides the task and seed for observation kind `obs` ('state' or 'image')."""
    return {} if obs == "state" else {"obs": obs, "image_size": int(image_size)}


def check_observation(task: str, obs: str) -> None:
    """A clear error when task `task` cannot give observations of kind `obs`."""
    from csil_lite.errors import UserError  # noqa: PLC0415

    if obs != "state" and task in TOY_TASKS:
        raise UserError(f"obs={obs!r} needs a robosuite task with cameras; {task!r} is a toy task (state only)")


def dataset_keys(obs: str) -> tuple[tuple[str, ...], bool]:
    """(the demonstration file's keys a run with observations `obs` reads, whether they stay a dict): robosuite's
    low-dim state keys flattened, or its cameras' frames and proprioception as a dict observation."""
    from csil_lite.envs.robosuite import CAMERAS, PROPRIO_KEYS, STATE_KEYS  # noqa: PLC0415  (no mujoco import)

    if obs == "image":
        return tuple(f"{c}_image" for c in CAMERAS) + PROPRIO_KEYS, True
    return STATE_KEYS, False


def make_expert(name: str, seed: int, **kwargs: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Scripted expert `obs -> action` for a toy task, its noise seeded by `seed`.

    Robosuite experts need the simulator state, not only the observation; they live in
    `csil_lite.data.scripted`.
    """
    if name in TOY_TASKS:
        return toy.make_expert(name, np.random.default_rng(seed), **kwargs)
    if name in ROBOSUITE_TASKS:
        raise ValueError(
            f"make_expert: {name!r} is a robosuite task; its scripted experts need the simulator state "
            f"and live in csil_lite.data.scripted. Observation-only experts exist for: {list(TOY_TASKS)}"
        )
    raise _unknown(name)
