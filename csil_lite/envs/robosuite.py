"""robosuite manipulation tasks behind the gymnasium API.

Why a wrapper at all: robosuite returns a large dict with robosuite key names, never terminates on success,
clips out-of-range actions silently and seeds from numpy's *global* RNG. The learners in csil_lite want
(a) a declared, fixed list of robomimic low-dim keys flattened in a documented order, (b) ``info["success"]``
from the task's own ``_check_success()``, (c) loud errors for malformed actions and (d) reproducible resets
from a seed. This module gives exactly that and nothing more; all physics and controllers are robosuite's.

State observations (``obs="state"``) are the concatenation, in this order, of::

    robot0_eef_pos (3) | robot0_eef_quat (4, xyzw) | robot0_gripper_qpos (2) | object (Lift 10, Can/Square 14)

``object`` is robosuite's ``object-state`` under robomimic's name. The named dict (``info["obs_dict"]``,
:meth:`RobosuiteEnv.obs_dict`) holds more than the learner flattens: every low-dim key robomimic's own
extraction writes for this robot (`LOW_DIM_KEYS`: ``object`` plus robosuite's ``robot0_*`` observations except
the concatenated ``robot0_proprio-state``), so datasets written from it serve robomimic configs that name
e.g. ``robot0_joint_pos``. `STATE_KEYS` is a declared subset of it.

Observations are a function of the MuJoCo state alone. robosuite's Can and Square scenes compute the
object-to-gripper pose (the first 7 entries of ``object``) from the object pose *cached by the previous
observation update*, so a single update after a state change mixes the new gripper pose with the old object
pose (several cm off while the nut drops onto the peg; zeros right after a reset). This wrapper updates the
observables twice, so the cached pose is the current one. robomimic's ``reset_to`` updates once: on those
7 entries it reproduces our values when called twice on the same state, as its state-to-observation extraction
does not (it lags them one state behind).

Image observations (``obs="image"``) are a ``gymnasium.spaces.Dict`` with ``agentview_image`` and
``robot0_eye_in_hand_image`` (uint8, HWC, upright: robosuite's OpenGL frames are flipped, as robomimic does)
plus the three proprioceptive keys.

Rendering needs an offscreen OpenGL backend; on Linux we default ``MUJOCO_GL`` to ``egl`` (Mesa's software
llvmpipe works without a GPU) unless the user set it, *before* mujoco is imported. ``osmesa`` works too.
"""

from __future__ import annotations

import os
import sys

if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ:  # must precede `import mujoco`
    os.environ["MUJOCO_GL"] = "egl"
if sys.platform.startswith("linux"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import gymnasium as gym
import numpy as np

from csil_lite.obs import flatten_obs

STATE_KEYS: tuple[str, ...] = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
# What robomimic 0.3.0's EnvRobosuite.get_observation (and so dataset_states_to_obs.py) writes as low-dim
# keys for one Panda under robosuite 1.5.1: "object" (robosuite's object-state) and every "robot0_*"
# observation except robot0_proprio-state, after activating the joint-position observables (tests check it).
LOW_DIM_KEYS: tuple[str, ...] = (
    "object",
    "robot0_joint_pos",
    "robot0_joint_pos_cos",
    "robot0_joint_pos_sin",
    "robot0_joint_vel",
    "robot0_eef_pos",
    "robot0_eef_quat",
    "robot0_eef_quat_site",
    "robot0_gripper_qpos",
    "robot0_gripper_qvel",
)
assert set(STATE_KEYS) <= set(LOW_DIM_KEYS)
PROPRIO_KEYS: tuple[str, ...] = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
CAMERAS: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
ACTION_DIM = 7  # OSC delta pose (dx, dy, dz, drx, dry, drz) scaled by 0.05 m / 0.5 rad, + gripper (-1 open, +1 close)
CONTROL_FREQ = 20

# MimicGen's D0 square-nut bounds (relative to the table centre): the paper's source-demo distribution.
_D0_SQUARE = dict(x_range=(-0.115, -0.11), y_range=(0.11, 0.225), rotation=(0.0, 2.0 * np.pi))
_D0_ROUND = dict(x_range=(-0.115, -0.11), y_range=(-0.225, -0.11), rotation=(0.0, 2.0 * np.pi))


@dataclass(frozen=True)
class TaskSpec:
    """How a csil_lite task name maps onto a robosuite environment."""

    env_name: str  # robosuite class name
    horizon: int  # steps at 20 Hz; robomimic's rollout horizon for lift/can/square is 400
    placement: str | None = None  # named placement preset, see `_placement_sampler`
    needs_mimicgen: bool = False
    env_kwargs: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, TaskSpec] = {
    "lift": TaskSpec("Lift", 400),
    "can": TaskSpec("PickPlaceCan", 400),
    "square": TaskSpec("NutAssemblySquare", 400),
    "square_d0": TaskSpec("NutAssemblySquare", 400, placement="d0"),
    "nut_assembly_d0": TaskSpec("NutAssembly", 500, placement="d0"),
    # MimicGen-only scenes: their classes come from the `mimicgen` package (NVIDIA Source Code License,
    # non-commercial). We never vendor them; they are built only if the user installed mimicgen.
    "coffee": TaskSpec("Coffee_D0", 400, needs_mimicgen=True),
    "threading": TaskSpec("Threading_D0", 400, needs_mimicgen=True),
    "mug_cleanup": TaskSpec("MugCleanup_D0", 500, needs_mimicgen=True),
    "hammer_cleanup": TaskSpec("HammerCleanup_D0", 500, needs_mimicgen=True),
}


def robosuite_errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


# robosuite logs a page of harmless warnings on import and on every reset (missing private macro file, controller
# parts the Panda does not have); they would bury a notebook's output. One filter on its logger, installed before
# robosuite is first imported (its logger setup adds handlers and levels, never removes filters), keeps errors only.
# `logging.getLogger("robosuite_logs").removeFilter(robosuite_errors_only)` shows everything again.
logging.getLogger("robosuite_logs").addFilter(robosuite_errors_only)


def _import_robosuite():
    try:
        import robosuite  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "csil_lite.envs.robosuite needs robosuite 1.5.1 and mujoco 3.3.7: pip install 'csil_lite[sim]'"
        ) from e
    return robosuite


def _import_mimicgen(task: str) -> None:
    try:
        import mimicgen  # noqa: F401  (registers its environments with robosuite on import)
    except ImportError as e:
        raise ImportError(
            f"task {task!r} is a MimicGen scene; its environment classes live in the `mimicgen` package "
            "(github.com/NVlabs/mimicgen), which is under the NVIDIA Source Code License (non-commercial use "
            "only) and is therefore not bundled with csil_lite. Install it yourself if your use is "
            "non-commercial (note: mimicgen targets robosuite 1.4.x). Tasks available without it: "
            "lift, can, square, square_d0, nut_assembly_d0."
        ) from e


def _placement_sampler(env_name: str, placement: str | None):
    """A robosuite placement sampler for a named preset, or None for robosuite's default."""
    if placement in (None, "default"):
        return None
    if placement != "d0":
        raise ValueError(f"unknown placement {placement!r}; expected None, 'default' or 'd0'")
    if env_name not in ("NutAssemblySquare", "NutAssembly"):
        raise ValueError(f"placement 'd0' is defined for the nut-assembly tasks only, not {env_name!r}")
    from robosuite.utils.placement_samplers import SequentialCompositeSampler, UniformRandomSampler

    sampler = SequentialCompositeSampler(name="ObjectSampler")
    for nut, bounds in (("SquareNut", _D0_SQUARE), ("RoundNut", _D0_ROUND)):
        sampler.append_sampler(
            UniformRandomSampler(
                name=f"{nut}Sampler",
                x_range=list(bounds["x_range"]),
                y_range=list(bounds["y_range"]),
                rotation=list(bounds["rotation"]),
                rotation_axis="z",
                ensure_object_boundary_in_range=False,
                ensure_valid_placement=True,
                reference_pos=np.array((0.0, 0.0, 0.82)),  # NutAssembly's table_offset
                z_offset=0.02,
            )
        )
    return sampler


def controller_config() -> dict:
    """robosuite 1.5's default Panda composite controller: OSC_POSE, delta actions, 0.05 m / 0.5 rad per unit."""
    from robosuite.controllers import load_composite_controller_config

    return load_composite_controller_config(controller="BASIC", robot="Panda")


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """robosuite samples placements and joint noise from numpy's global RNG; seed it only for the reset."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


class RobosuiteEnv(gym.Env):
    """One robosuite task (Panda, OSC delta pose, 20 Hz) as a gymnasium environment.

    ``terminated`` is True when the task succeeds (if ``terminate_on_success``), ``truncated`` at ``horizon``.
    ``reward`` is robosuite's sparse reward (1.0 on success). ``info["success"]`` is the task's own check.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        task: str,
        *,
        seed: int | None = None,
        obs: str = "state",
        image_size: int = 84,
        horizon: int | None = None,
        placement: str | None = None,
        terminate_on_success: bool = True,
        cameras: Sequence[str] = CAMERAS,
        render_mode: str | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown robosuite task {task!r}; expected one of {sorted(TASKS)}")
        if obs not in ("state", "image"):
            raise ValueError(f"obs must be 'state' or 'image', got {obs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        spec = TASKS[task]
        robosuite = _import_robosuite()
        if spec.needs_mimicgen:
            _import_mimicgen(task)
        self.task = task
        self.spec_ = spec
        self.obs_mode = obs
        self.image_size = int(image_size)
        self.cameras = tuple(cameras)
        self.horizon = int(horizon if horizon is not None else spec.horizon)
        if self.horizon <= 0:
            raise ValueError(f"horizon must be positive, got {self.horizon}")
        self.placement = placement if placement is not None else spec.placement
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        use_cams = obs == "image"
        self.env_kwargs: dict[str, Any] = dict(
            robots="Panda",
            controller_configs=controller_config(),
            control_freq=CONTROL_FREQ,
            horizon=self.horizon,
            ignore_done=True,  # we count steps ourselves so success and time limits are reported separately
            reward_shaping=False,
            has_renderer=False,
            has_offscreen_renderer=use_cams,
            use_camera_obs=use_cams,
            use_object_obs=True,
            camera_names=list(self.cameras),
            camera_heights=self.image_size,
            camera_widths=self.image_size,
            hard_reset=False,  # reloading the model every reset costs ~1 s and changes nothing for these tasks
            **spec.env_kwargs,
        )
        sampler = _placement_sampler(spec.env_name, self.placement)
        make_kwargs = dict(self.env_kwargs)
        if sampler is not None:
            make_kwargs["placement_initializer"] = sampler
        # Construction draws from numpy's global RNG too (Lift's cube size), so seed it for reproducible scenes.
        with _global_numpy_seed(seed) if seed is not None else contextlib.nullcontext():
            self.env = robosuite.make(spec.env_name, **make_kwargs)
        if use_cams:
            # robosuite samples every observable at the *first* physics substep of a control step, so what
            # `step` returns lags the saved MuJoCo state. We re-read low-dim sensors after each step and render
            # the cameras ourselves (once per step), so observations are a function of `get_state()` and match
            # images re-rendered from saved states.
            for cam in self.cameras:
                self.env._observables[f"{cam}_image"].set_enabled(False)
        # As robomimic's EnvRobosuite does: joint positions (and eef velocities, where a robot has them) on.
        for name in self.env.observation_names:
            if "joint_pos" in name or "eef_vel" in name:
                self.env.modify_observable(observable_name=name, attribute="active", modifier=True)
        self._pending_seed = seed
        self._t = 0
        self._last: dict[str, np.ndarray] | None = None

        # Spaces, from one reset (robosuite decides the object-state size).
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        with _global_numpy_seed(0 if seed is None else seed):
            self.env.reset()
        named = self._named(self._raw_observations())
        if obs == "state":
            dim = flatten_obs(named, STATE_KEYS).shape[-1]
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        else:
            spaces: dict[str, gym.Space] = {
                f"{c}_image": gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
                for c in self.cameras
            }
            for k in PROPRIO_KEYS:
                spaces[k] = gym.spaces.Box(-np.inf, np.inf, named[k].shape, np.float32)
            self.observation_space = gym.spaces.Dict(spaces)

    # ------------------------------------------------------------------ observations
    def _raw_observations(self) -> dict[str, np.ndarray]:
        """robosuite's observation dict at the current MuJoCo state, as a function of that state alone.

        Two forced updates: the object-to-gripper sensors of Can/Square read the object pose from the cache
        before the same update refreshes it (see the module docstring); the second pass reads the current one.
        """
        self.env._get_observations(force_update=True)
        return self.env._get_observations(force_update=True)

    def _named(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """robosuite dict -> robomimic's low-dim keys (object-state -> object, every robot0_* key except the
        concatenated proprio-state), float32, plus upright camera frames in image mode."""
        named: dict[str, np.ndarray] = {"object": np.asarray(raw["object-state"], np.float32)}
        for k, v in raw.items():
            if k.startswith("robot0_") and not k.endswith("proprio-state") and not k.endswith("_image"):
                named[k] = np.asarray(v, np.float32)
        if self.obs_mode == "image":
            _ensure_offscreen(self.sim)
            s = self.image_size
            for c in self.cameras:
                named[f"{c}_image"] = np.ascontiguousarray(self.sim.render(width=s, height=s, camera_name=c)[::-1])
        self._last = named
        return named

    def _observation(self, named: dict[str, np.ndarray]):
        if self.obs_mode == "state":
            return flatten_obs(named, STATE_KEYS)
        return {k: named[k] for k in self.observation_space.spaces}

    def obs_dict(self) -> dict[str, np.ndarray]:
        """The current observation under robomimic key names (copies)."""
        if self._last is None:
            raise RuntimeError("obs_dict() called before reset()")
        return {k: v.copy() for k, v in self._last.items()}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._pending_seed is not None:
            seed, self._pending_seed = self._pending_seed, None
        super().reset(seed=seed)
        inner_seed = int(self.np_random.integers(0, 2**31 - 1))
        with _global_numpy_seed(inner_seed):
            self.env.reset()
        self._t = 0
        named = self._named(self._raw_observations())
        return self._observation(named), {"obs_dict": self.obs_dict(), "success": self.is_success()}

    def _check_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action has non-finite entries: {a}")
        if np.any(np.abs(a) > 1.0 + 1e-6):
            bad = np.flatnonzero(np.abs(a) > 1.0 + 1e-6).tolist()
            raise ValueError(f"action entries {bad} outside [-1, 1]: {a[bad]}; the controller would clip them")
        return a

    def step(self, action):
        if self._last is None:
            raise RuntimeError("step() called before reset()")
        a = self._check_action(action)
        _, reward, _, _ = self.env.step(a)
        # mj_step leaves positions/sites one substep behind the integrated state: recompute kinematics so the
        # observation is a function of get_state() (as in robomimic's states->obs extraction), see __init__.
        self.sim.forward()
        self._t += 1
        named = self._named(self._raw_observations())
        success = self.is_success()
        terminated = bool(success and self.terminate_on_success)
        truncated = bool(self._t >= self.horizon and not terminated)
        info = {"obs_dict": self.obs_dict(), "success": success}
        return self._observation(named), float(reward), terminated, truncated, info

    def render(self):
        """An upright agentview frame (``render_mode="rgb_array"``)."""
        return render_frames(self, None, camera=self.cameras[0], size=max(self.image_size, 256))[0]

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ task facts
    def is_success(self) -> bool:
        return bool(self.env._check_success())

    @property
    def sim(self):
        return self.env.sim

    def eef_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position [3], rotation matrix [3,3]) of the grip site, read from the simulator.

        Scripted controllers must close the loop on this, not on the controller's cached reference pose.
        """
        robot = self.env.robots[0]
        sid = robot.eef_site_id["right"]
        return self.sim.data.site_xpos[sid].copy(), self.sim.data.site_xmat[sid].reshape(3, 3).copy()

    def env_args(self) -> dict:
        """robomimic's ``env_args`` record (type 1 = robosuite) for writing datasets.

        ``env_kwargs`` holds exactly what ``robosuite.make(env_name, **env_kwargs)`` accepts (robomimic passes
        it through unchanged). What csil_lite needs besides, its task name and the placement preset (a
        robosuite sampler object, not a keyword value), sits under the top-level key ``"csil_lite"``, which
        robomimic never reads (it reads env_name, type, env_version and env_kwargs). A robomimic rebuild
        therefore gets robosuite's default placement: replaying saved states is exact, but fresh resets of a
        ``*_d0`` task are not D0 resets there.
        """
        import robosuite

        kwargs = json.loads(json.dumps(self.env_kwargs, default=_jsonable))
        return {
            "env_name": self.spec_.env_name,
            "env_version": robosuite.__version__,
            "type": 1,
            "env_kwargs": kwargs,
            "csil_lite": {"task": self.task, "placement": self.placement},
        }

    # ------------------------------------------------------------------ MuJoCo state round trips
    def get_state(self) -> np.ndarray:
        """Flattened MuJoCo state (time, qpos, qvel) as robomimic's ``states`` stores it."""
        return np.asarray(self.sim.get_state().flatten(), np.float64)

    def model_xml(self) -> str:
        """The scene's MJCF (robomimic's ``model_file`` demo attribute)."""
        return self.sim.model.get_xml()

    def reset_to(self, state: np.ndarray, model_file: str | None = None):
        """Put the simulator into a saved state (optionally rebuilding the scene from its MJCF first).

        Returns the observation at that state. The step counter restarts at 0.
        """
        state = np.asarray(state, np.float64)
        if model_file is not None:
            self.env.reset_from_xml_string(self.env.edit_model_xml(model_file))
        expected = self.get_state().shape
        if state.shape != expected:
            raise ValueError(f"state has shape {state.shape}, this scene expects {expected}")
        self.sim.set_state_from_flattened(state)
        self.sim.forward()
        if hasattr(self.env, "update_state"):
            self.env.update_state()
        self._t = 0
        return self._observation(self._named(self._raw_observations()))


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)


def task_from_env_args(env_args: dict) -> tuple[str, str | None]:
    """(csil_lite task, placement preset) of a dataset's ``env_args``.

    Read from ``env_args["csil_lite"]`` (`read_dataset` moves it there from older files); files from elsewhere
    (robomimic downloads) map by robosuite env name to the task with robosuite's default placement.
    """
    ours = env_args.get("csil_lite")
    if isinstance(ours, dict) and ours.get("task") in TASKS:
        return ours["task"], ours.get("placement", TASKS[ours["task"]].placement)
    name = env_args.get("env_name")
    for task, spec in TASKS.items():
        if spec.env_name == name and spec.placement is None:
            return task, None
    raise ValueError(f"env_args names env {name!r}, which matches no csil_lite task ({sorted(TASKS)})")


def make(task: str, **kwargs: Any) -> RobosuiteEnv:
    """Build a task by name: lift, can, square, square_d0, nut_assembly_d0 (+ mimicgen scenes if installed).

    Keywords are :class:`RobosuiteEnv`'s (seed, obs, image_size, horizon, placement, ...)."""
    return RobosuiteEnv(task, **kwargs)


def _ensure_offscreen(sim) -> None:
    if sim._render_context_offscreen is None:
        from robosuite.utils.binding_utils import MjRenderContextOffscreen

        ctx = MjRenderContextOffscreen(sim, device_id=-1)  # registers itself with `sim`
        ctx.vopt.geomgroup[0] = 0  # hide collision geoms, show visual meshes, as robosuite's cameras do
        ctx.vopt.geomgroup[1] = 1


def render_frames(
    env: RobosuiteEnv,
    states: np.ndarray | None,
    camera: str = "agentview",
    size: int = 84,
    *,
    model_file: str | None = None,
) -> np.ndarray:
    """Upright uint8 frames [T, size, size, 3] of ``camera`` at each saved MuJoCo state.

    ``states=None`` renders the current state once. The simulator is left at the last rendered state. This is
    how image datasets are made from state-only demos, and how chapters draw frame strips of an episode.
    """
    base = env.unwrapped if hasattr(env, "unwrapped") else env
    if model_file is not None:
        base.reset_to(np.asarray(states)[0], model_file=model_file)
    sim = base.sim
    names = [sim.model.camera_id2name(i) for i in range(sim.model.ncam)]
    if camera not in names:
        raise ValueError(f"camera {camera!r} not in the scene; cameras: {names}")
    _ensure_offscreen(sim)
    if states is None:
        return sim.render(width=size, height=size, camera_name=camera)[::-1][None].copy()
    states = np.asarray(states, np.float64)
    if states.ndim != 2:
        raise ValueError(f"states must be [T, S], got shape {states.shape}")
    out = np.empty((states.shape[0], size, size, 3), np.uint8)
    for i, s in enumerate(states):
        sim.set_state_from_flattened(s)
        sim.forward()
        out[i] = sim.render(width=size, height=size, camera_name=camera)[::-1]
    return out


def frame_strip(frames: np.ndarray, n: int = 8) -> np.ndarray:
    """``n`` evenly spaced frames of an episode side by side ([H, n*W, 3]) for a figure."""
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    return np.concatenate(list(frames[idx]), axis=1)


__all__ = [
    "ACTION_DIM",
    "CAMERAS",
    "LOW_DIM_KEYS",
    "PROPRIO_KEYS",
    "STATE_KEYS",
    "TASKS",
    "RobosuiteEnv",
    "controller_config",
    "frame_strip",
    "make",
    "render_frames",
    "task_from_env_args",
]
