"""Continuous 2-D point-mass tasks: cheap enough for CPU previews, too hard for BC from a few demos.

Why these tasks: the book needs a continuous-control problem where a whole CSIL run fits in CPU minutes,
where a scripted expert gives near-perfect demonstrations, and where behavioural cloning from a handful of
them still fails often enough that the online phase has something to fix. A point mass with inertia, noisy
dynamics and random start/goal regions does that:

- ``pointmass-reach``: reach a random goal and *stop* there (position within ``goal_radius`` and speed below
  ``stop_speed``). Errors of a cloned policy near the goal show up as overshoot and orbiting.
- ``pointmass-obstacles``: a wall splits the arena; the only way through is a gap whose height is random per
  episode (given in the observation). The expert lines up with the gap, then goes through. A cloned policy
  has to generalise this switching behaviour over gap heights it has seen a few times only, and crashes
  into the wall when it does not (a crash stops the mass dead).

Dynamics (one step, velocities in arena units per step):
``v' = damping * v + accel * a + noise_std * N(0, I)``, ``p' = p + v'``. The arena is [-1, 1]^2; leaving it
stops the motion along that axis; a step whose path crosses a wall is undone and the velocity set to zero.
The terminal speed is ``V = accel / (1 - damping)``; observations give the velocity in units of V.

Observation (float32): ``[x, y, vx / V, vy / V, goal_x, goal_y]`` plus ``gap_y`` for the obstacle task.
Reward: sparse, 1 on the step that reaches success, which is absorbing (``terminated=True``);
``truncated=True`` at the horizon otherwise. ``info["shaped_reward"]`` is a dense negative
path-length-to-goal, the "true reward" for correlation plots with learned rewards; CSIL never uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

Box2 = tuple[float, float, float, float]  # (x_lo, y_lo, x_hi, y_hi)


@dataclass(frozen=True)
class PointMassSpec:
    """Everything that defines a point-mass task; `make_env(name, **overrides)` replaces fields."""

    name: str
    horizon: int = 100
    start_box: Box2 = (-0.8, -0.8, 0.8, 0.8)
    goal_box: Box2 = (-0.8, -0.8, 0.8, 0.8)
    min_start_goal_dist: float = 0.6
    goal_radius: float = 0.05
    stop_speed: float = 0.4  # in units of the terminal speed V
    damping: float = 0.8  # fraction of velocity kept per step
    accel: float = 0.01  # velocity change per step at |a| = 1
    noise_std: float = 0.004  # velocity noise per step (8 % of V)
    wall: bool = False
    wall_half_thickness: float = 0.05  # wall occupies |x| <= this
    gap_half_width: float = 0.15
    gap_range: tuple[float, float] = (-0.5, 0.5)

    @property
    def terminal_speed(self) -> float:
        return self.accel / (1.0 - self.damping)

    @property
    def obs_dim(self) -> int:
        return 7 if self.wall else 6


TASK_SPECS: dict[str, PointMassSpec] = {
    "pointmass-reach": PointMassSpec(name="pointmass-reach", horizon=100),
    "pointmass-obstacles": PointMassSpec(
        name="pointmass-obstacles",
        horizon=150,
        start_box=(-0.9, -0.8, -0.5, 0.8),
        goal_box=(0.5, -0.8, 0.9, 0.8),
        min_start_goal_dist=0.0,
        wall=True,
    ),
}


def get_spec(task: str | PointMassSpec, **overrides: Any) -> PointMassSpec:
    """Resolve a task name (or spec) and apply field overrides, rejecting unknown names and fields."""
    if isinstance(task, PointMassSpec):
        spec = task
    elif task in TASK_SPECS:
        spec = TASK_SPECS[task]
    else:
        raise ValueError(f"unknown toy task {task!r}; known: {sorted(TASK_SPECS)}")
    fields = {f.name for f in dataclasses.fields(PointMassSpec)} - {"name"}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise TypeError(f"{spec.name}: unknown option(s) {bad}; valid: {sorted(fields)}")
    spec = dataclasses.replace(spec, **overrides)
    if spec.horizon <= 0:
        raise ValueError(f"{spec.name}: horizon must be > 0, got {spec.horizon}")
    if not 0.0 <= spec.damping < 1.0:
        raise ValueError(f"{spec.name}: damping must be in [0, 1), got {spec.damping}")
    return spec


def _segment_hits_box(p0: np.ndarray, p1: np.ndarray, box: Box2) -> bool:
    """Slab test: does the segment p0 -> p1 touch the axis-aligned box? (No tunnelling through thin walls.)"""
    t_lo, t_hi = 0.0, 1.0
    lo, hi = (box[0], box[1]), (box[2], box[3])
    for k in range(2):
        d = p1[k] - p0[k]
        if abs(d) < 1e-12:
            if p0[k] < lo[k] or p0[k] > hi[k]:
                return False
            continue
        t1, t2 = (lo[k] - p0[k]) / d, (hi[k] - p0[k]) / d
        if t1 > t2:
            t1, t2 = t2, t1
        t_lo, t_hi = max(t_lo, t1), min(t_hi, t2)
        if t_lo > t_hi:
            return False
    return True


def wall_boxes(spec: PointMassSpec, gap_y: float) -> list[Box2]:
    """The two wall pieces above and below the gap (empty for tasks without a wall)."""
    if not spec.wall:
        return []
    w, h = spec.wall_half_thickness, spec.gap_half_width
    return [(-w, -1.0, w, gap_y - h), (-w, gap_y + h, w, 1.0)]


class PointMassEnv(gym.Env):
    """A point mass on a 2-D table (gymnasium API). See the module docstring for dynamics and observations.

    Determinism: every random draw (start, goal, gap, dynamics noise) comes from `self.np_random`, so
    `reset(seed=s)` fixes the whole episode given the actions. `PointMassEnv(seed=s).reset()` equals
    `PointMassEnv().reset(seed=s)`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self, task: str | PointMassSpec = "pointmass-reach", *, seed: int | None = None, **overrides: Any
    ):
        self.spec_ = get_spec(task, **overrides)
        s = self.spec_
        V = s.terminal_speed
        # |v| / V stays below ~1.5 in practice (noise std 0.13 V at stationarity): 5 is a generous bound.
        high = np.array([1.0, 1.0, 5.0, 5.0, 1.0, 1.0] + ([1.0] if s.wall else []), np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._V = V
        self._pending_seed = seed
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)
        self._goal = np.zeros(2)
        self._gap_y = 0.0
        self._walls: list[Box2] = []
        self._t = 0
        self._done = True

    # -- public read-only state, for plots and experts ---------------------------------------------------
    @property
    def task(self) -> PointMassSpec:
        return self.spec_

    @property
    def position(self) -> np.ndarray:
        return self._pos.copy()

    @property
    def goal(self) -> np.ndarray:
        return self._goal.copy()

    @property
    def walls(self) -> list[Box2]:
        return list(self._walls)

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is None and self._pending_seed is not None:
            seed, self._pending_seed = self._pending_seed, None
        super().reset(seed=seed)
        s, rng = self.spec_, self.np_random
        self._pos = rng.uniform(s.start_box[:2], s.start_box[2:])
        for _ in range(1000):
            self._goal = rng.uniform(s.goal_box[:2], s.goal_box[2:])
            if np.linalg.norm(self._goal - self._pos) >= s.min_start_goal_dist:
                break
        else:  # pragma: no cover - only reachable with an impossible override
            raise ValueError(f"{s.name}: no goal at distance >= {s.min_start_goal_dist} from the start box")
        self._gap_y = float(rng.uniform(*s.gap_range)) if s.wall else 0.0
        self._walls = wall_boxes(s, self._gap_y)
        self._vel = np.zeros(2)
        self._t = 0
        self._done = False
        return self._obs(), self._info(success=False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._done:
            raise RuntimeError(f"{self.spec_.name}: step() after the episode ended; call reset() first")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,):
            raise ValueError(f"{self.spec_.name}: action shape {a.shape}, expected (2,)")
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            raise ValueError(f"{self.spec_.name}: action {a.tolist()} outside [-1, 1]^2 (not clipped here)")
        s = self.spec_
        vel = s.damping * self._vel + s.accel * a + s.noise_std * self.np_random.standard_normal(2)
        pos = self._pos + vel
        for k in range(2):  # arena border: stop motion along that axis
            if abs(pos[k]) > 1.0:
                pos[k] = np.sign(pos[k])
                vel[k] = 0.0
        if any(_segment_hits_box(self._pos, pos, b) for b in self._walls):
            pos, vel = self._pos.copy(), np.zeros(2)  # crash: undo the step and stop
        self._pos, self._vel = pos, vel
        self._t += 1
        success = self._success()
        terminated = success
        truncated = (not terminated) and self._t >= s.horizon
        self._done = terminated or truncated
        return self._obs(), float(success), terminated, truncated, self._info(success)

    # -- helpers -----------------------------------------------------------------------------------------
    def _success(self) -> bool:
        s = self.spec_
        near = np.linalg.norm(self._pos - self._goal) < s.goal_radius
        slow = np.linalg.norm(self._vel) < s.stop_speed * self._V
        return bool(near and slow)

    def _obs(self) -> np.ndarray:
        parts = [self._pos, self._vel / self._V, self._goal]
        if self.spec_.wall:
            parts.append([self._gap_y])
        return np.concatenate(parts).astype(np.float32)

    def path_distance(self) -> float:
        """Length of the shortest wall-respecting path to the goal, approximated through the gap centre."""
        if self.spec_.wall and self._pos[0] < -self.spec_.wall_half_thickness:
            gap = np.array([0.0, self._gap_y])
            return float(np.linalg.norm(gap - self._pos) + np.linalg.norm(self._goal - gap))
        return float(np.linalg.norm(self._goal - self._pos))

    def _info(self, success: bool) -> dict:
        return {"success": success, "shaped_reward": -self.path_distance(), "t": self._t}


# -- scripted expert and demonstrations ----------------------------------------------------------------------


def make_expert(
    task: str | PointMassSpec, rng: np.random.Generator, *, action_noise: float = 0.1, **overrides: Any
) -> Callable[[np.ndarray], np.ndarray]:
    """A noisy scripted controller that reads only the observation (so it works on any env instance).

    It picks a target (the goal; for the wall task first a point in front of the gap, then one behind
    it), asks for full speed towards it (slowing down linearly within 0.15 of the goal), and chooses the
    action that reaches that velocity in one step. Gaussian noise of std `action_noise` is added and the
    sum clipped to [-1, 1]: that clip is part of the expert's own policy, not a correction of a caller's
    action.
    """
    s = get_spec(task, **overrides)
    V, slow_radius = s.terminal_speed, 0.15

    def policy(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        if obs.shape != (s.obs_dim,):
            raise ValueError(f"{s.name} expert: observation shape {obs.shape}, expected ({s.obs_dim},)")
        pos, vel, goal = obs[0:2], obs[2:4] * V, obs[4:6]
        target, slow = goal, True
        if s.wall and pos[0] < s.wall_half_thickness + 0.05:
            gap_y, w = obs[6], s.wall_half_thickness
            in_corridor = abs(pos[1] - gap_y) < s.gap_half_width - 0.05 or pos[0] > -w
            target = np.array([w + 0.2, gap_y]) if in_corridor else np.array([-w - 0.15, gap_y])
            slow = False
        delta = target - pos
        dist = float(np.linalg.norm(delta))
        speed = V * min(1.0, dist / slow_radius) if slow else V
        v_des = speed * delta / max(dist, 1e-9)
        a = (v_des - s.damping * vel) / s.accel
        a = a + action_noise * rng.standard_normal(2)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    return policy


def rollout(
    env: PointMassEnv, policy: Callable[[np.ndarray], np.ndarray], *, seed: int | None = None
) -> dict[str, Any]:
    """One episode as an `episodes_to_transitions` dict, plus `success` and `shaped_rewards`."""
    obs, _ = env.reset(seed=seed)
    rec: dict[str, list] = {"obs": [], "actions": [], "next_obs": [], "rewards": [], "shaped_rewards": []}
    terminated = truncated = False
    info: dict = {"success": False}
    while not (terminated or truncated):
        act = policy(obs)
        nxt, rew, terminated, truncated, info = env.step(act)
        for k, v in zip(rec, (obs, act, nxt, rew, info["shaped_reward"])):
            rec[k].append(v)
        obs = nxt
    ep = {k: np.asarray(v, np.float32) for k, v in rec.items()}
    ep["terminal"] = bool(terminated)
    ep["success"] = bool(info["success"])
    return ep


def collect_demos(
    task: str | PointMassSpec,
    n_episodes: int,
    seed: int,
    *,
    max_attempts: int | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """`n_episodes` successful expert episodes (failures are discarded, as for the robot demos).

    Episode i's environment and expert noise derive from `seed`, so the same call returns the same demos.
    Each dict has `obs`, `actions`, `next_obs`, `rewards`, `terminal` (True: success is absorbing) for
    `csil_lite.data.transitions.episodes_to_transitions`, plus `shaped_rewards` and `success`.
    """
    if n_episodes <= 0:
        raise ValueError(f"collect_demos: n_episodes must be > 0, got {n_episodes}")
    max_attempts = 2 * n_episodes + 10 if max_attempts is None else max_attempts
    env = PointMassEnv(task, **overrides)
    env_ss, expert_ss = np.random.SeedSequence(seed).spawn(2)
    env_seeds = env_ss.generate_state(max_attempts)
    expert = make_expert(env.task, np.random.default_rng(expert_ss))
    demos: list[dict[str, Any]] = []
    for attempt in range(max_attempts):
        ep = rollout(env, expert, seed=int(env_seeds[attempt]))
        if ep["success"]:
            demos.append(ep)
            if len(demos) == n_episodes:
                return demos
    raise RuntimeError(
        f"collect_demos({env.task.name!r}): only {len(demos)}/{n_episodes} successes "
        f"in {max_attempts} attempts"
    )
