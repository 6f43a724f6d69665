"""Scripted experts for Lift, PickPlaceCan and NutAssemblySquare, and a recorder that writes robomimic episodes.

Why scripted: the robomimic human datasets cannot be downloaded everywhere, and a closed-loop scripted expert
gives 95-100 % success with the task's own randomisation. To make the data less monotonous than a single
P-controller, each episode draws its own speed cap, approach heights, grasp offsets and action-noise scale;
failed attempts are discarded (as MimicGen does), and the success rate is printed.

Every expert is a list of phases; a phase drives the grip site towards a target pose with a proportional law
on the *measured* site pose (robosuite's controller reference pose is not refreshed between policy steps):

    a_pos = clip_norm((p* - p) / 0.05, speed),   a_rot = clip_norm(axis_angle(R* R^T) / 0.5, 0.6)

which is the delta-OSC action that would reach the target in one step if the controller were perfect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from csil_lite.data.robomimic import Episode

POS_SCALE = 0.05  # metres per unit action (robosuite OSC output_max)
ROT_SCALE = 0.5  # radians per unit action
OPEN, CLOSE = -1.0, 1.0
# Top-down grasp at yaw 0: the fingers close along world x, the approach axis points down.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


# ---------------------------------------------------------------------------------------------- pose helpers
def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quat_to_mat(q_xyzw: np.ndarray) -> np.ndarray:
    """robosuite quaternions are (x, y, z, w)."""
    return Rotation.from_quat(np.asarray(q_xyzw, np.float64)).as_matrix()


def yaw_of(rot: np.ndarray) -> float:
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def grip_yaw(rot: np.ndarray) -> float:
    """Yaw of a top-down gripper orientation R = Rz(yaw) R_DOWN."""
    return yaw_of(rot @ R_DOWN.T)


def wrap(angle: float) -> float:
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)


def axis_angle(rot: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(rot).as_rotvec()


def clip_norm(v: np.ndarray, cap: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v if n <= cap or n == 0.0 else v * (cap / n)


def pose_action(
    pos: np.ndarray, rot: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray, grip: float,
    speed: float = 1.0, rot_cap: float = 0.6,
) -> np.ndarray:
    """Delta-OSC action from the measured pose towards a target pose (no noise, inside [-1, 1])."""
    a = np.zeros(7)
    a[:3] = clip_norm((np.asarray(target_pos) - pos) / POS_SCALE, speed)
    a[3:6] = clip_norm(axis_angle(target_rot @ rot.T) / ROT_SCALE, rot_cap)
    a[6] = grip
    return np.clip(a, -1.0, 1.0)


# --------------------------------------------------------------------------------------------- phase machine
@dataclass
class Phase:
    """Drive towards `target(env) -> (pos, rot)`; done when within tolerances for `hold` steps or after `max_steps`."""

    name: str
    target: Callable[[Any], tuple[np.ndarray, np.ndarray]]
    grip: float
    pos_tol: float = 0.01
    rot_tol: float = 0.1
    max_steps: int = 60
    min_steps: int = 0  # e.g. gripper closing time
    hold: int = 1
    speed: float | None = None  # None: the expert's per-episode speed


class ScriptedExpert:
    """Runs phases in order; `act(env)` returns the next action, `done` when the script has finished."""

    def __init__(self, phases: list[Phase], speed: float, noise: float, rng: np.random.Generator) -> None:
        self.phases, self.speed, self.noise, self.rng = phases, speed, noise, rng
        self.i, self.k, self.ok = 0, 0, 0

    @property
    def done(self) -> bool:
        return self.i >= len(self.phases)

    @property
    def phase(self) -> str:
        return self.phases[self.i].name if not self.done else "done"

    def act(self, env) -> np.ndarray:
        pos, rot = env.eef_pose()
        while not self.done:
            ph = self.phases[self.i]
            tpos, trot = ph.target(env)
            err_p = float(np.linalg.norm(tpos - pos))
            err_r = float(np.linalg.norm(axis_angle(trot @ rot.T)))
            self.ok = self.ok + 1 if (err_p < ph.pos_tol and err_r < ph.rot_tol) else 0
            if self.k >= ph.max_steps or (self.k >= ph.min_steps and self.ok >= ph.hold):
                self.i, self.k, self.ok = self.i + 1, 0, 0
                continue
            self.k += 1
            a = pose_action(pos, rot, tpos, trot, ph.grip, self.speed if ph.speed is None else ph.speed)
            a[:6] += self.noise * self.rng.standard_normal(6)
            return np.clip(a, -1.0, 1.0)
        # script finished: stay still with the last gripper command
        return np.array([0, 0, 0, 0, 0, 0, self.phases[-1].grip], dtype=np.float64)


# ------------------------------------------------------------------------------------------------- experts
def _site_pos(env, name: str) -> np.ndarray:
    return env.sim.data.site_xpos[env.sim.model.site_name2id(name)].copy()


def lift_expert(env, rng: np.random.Generator, noise: float = 0.05) -> ScriptedExpert:
    """Top-down grasp of the cube (yaw aligned to a cube face), then lift 15 cm."""
    inner = env.env
    cube_id = inner.cube_body_id
    above = rng.uniform(0.06, 0.10)
    depth = rng.uniform(-0.008, 0.0)

    def cube() -> tuple[np.ndarray, float]:
        p = inner.sim.data.body_xpos[cube_id].copy()
        yaw = yaw_of(inner.sim.data.body_xmat[cube_id].reshape(3, 3))
        return p, yaw

    p0, yaw0 = cube()
    g = wrap(yaw0)
    g = min((g + k * np.pi / 2 for k in range(-4, 5)), key=lambda y: abs(wrap(y - grip_yaw(env.eef_pose()[1]))))
    R = rot_z(g) @ R_DOWN
    jitter = np.r_[rng.uniform(-0.005, 0.005, 2), 0.0]
    phases = [
        Phase("approach", lambda e: (cube()[0] + jitter + [0, 0, above], R), OPEN, 0.01, 0.08, 80),
        Phase("descend", lambda e: (cube()[0] + [0, 0, depth], R), OPEN, 0.006, 0.1, 60, speed=0.4),
        Phase("close", lambda e: (e.eef_pose()[0], R), CLOSE, 1.0, 10.0, 8, min_steps=8, hold=99),
        Phase("lift", lambda e: (p0 + [0, 0, 0.17], R), CLOSE, 0.01, 0.2, 80),
    ]
    return ScriptedExpert(phases, rng.uniform(0.5, 1.0), noise * rng.uniform(0.5, 1.5), rng)


def can_expert(env, rng: np.random.Generator, noise: float = 0.05) -> ScriptedExpert:
    """Top-down grasp of the can, carry it over its target bin, release from a few cm, move away."""
    inner = env.env
    body = inner.obj_body_id[inner.obj_to_use]
    goal = np.asarray(inner.target_bin_placements[inner.object_id], np.float64).copy()
    carry_z = rng.uniform(1.0, 1.05)
    release_z = inner.bin2_pos[2] + rng.uniform(0.12, 0.15)
    # The can's quadrant centre is at the edge of the Panda's reach; aim at its robot-side part instead.
    goal_xy = goal[:2] + np.array([-0.05, -0.04]) + rng.uniform(-0.015, 0.015, 2)
    R = rot_z(rng.uniform(-0.3, 0.3)) @ R_DOWN
    rng_above = rng.uniform(0.08, 0.12)

    def can() -> np.ndarray:
        return inner.sim.data.body_xpos[body].copy()

    phases = [
        Phase("approach", lambda e: (can() + [0, 0, rng_above], R), OPEN, 0.01, 0.08, 80),
        Phase("descend", lambda e: (can() + [0, 0, 0.0], R), OPEN, 0.006, 0.1, 60, speed=0.4),
        Phase("close", lambda e: (e.eef_pose()[0], R), CLOSE, 1.0, 10.0, 10, min_steps=10, hold=99),
        Phase("lift", lambda e: (np.r_[e.eef_pose()[0][:2], carry_z], R), CLOSE, 0.02, 0.2, 60, speed=1.0),
        Phase("carry", lambda e: (np.r_[goal_xy, carry_z], R), CLOSE, 0.03, 0.35, 100, speed=1.0),
        Phase("lower", lambda e: (np.r_[goal_xy, release_z], R), CLOSE, 0.03, 0.35, 40),
        Phase("release", lambda e: (e.eef_pose()[0], R), OPEN, 1.0, 10.0, 8, min_steps=8, hold=99),
        Phase("retreat", lambda e: (np.r_[goal_xy, carry_z + 0.05], R), OPEN, 0.01, 0.2, 40),
    ]
    return ScriptedExpert(phases, rng.uniform(0.5, 1.0), noise * rng.uniform(0.5, 1.5), rng)


def square_expert(env, rng: np.random.Generator, noise: float = 0.05) -> ScriptedExpert:
    """Grasp the square nut's handle, align its hole over the square peg (yaw to a multiple of 90 degrees,
    with the least wrist twist), let go ~2 cm above the peg top, move away."""
    inner = env.env
    nut = inner.nuts[inner.nut_id]
    nut_body = inner.obj_body_id[nut.name]
    handle_site = nut.important_sites["handle"]
    peg_xy = inner.sim.data.body_xpos[inner.peg1_body_id][:2].copy()
    peg_top = 0.95  # peg1 body at z 0.85 plus its 0.1 m half-height
    above = rng.uniform(0.08, 0.12)
    grasp_dz = rng.uniform(-0.004, 0.004)
    lift_z = peg_top + rng.uniform(0.07, 0.10)
    release_nut_z = peg_top + rng.uniform(0.015, 0.025)

    def nut_pose() -> tuple[np.ndarray, float]:
        return inner.sim.data.body_xpos[nut_body].copy(), yaw_of(inner.sim.data.body_xmat[nut_body].reshape(3, 3))

    cur_g = grip_yaw(env.eef_pose()[1])
    psi = nut_pose()[1]
    g = min((psi + k * np.pi for k in range(-3, 4)), key=lambda y: abs(y - cur_g))
    R_grasp = rot_z(g) @ R_DOWN
    # After the grasp, the nut yaw must become k*pi/2; choose k once with the smallest final wrist yaw.
    choice: dict[str, float] = {}

    def place_rot(e) -> np.ndarray:
        gy = grip_yaw(e.eef_pose()[1])
        _, ps = nut_pose()
        if "k" not in choice:
            # The handle sits ~6 cm from the hole centre; if it ends up on the far side of the peg the arm is
            # at the edge of its reach, so only keep yaws with the handle not pointing away from the robot.
            npos, _ = nut_pose()
            lever = e.eef_pose()[0][:2] - npos[:2]

            def final_x(t: float) -> float:
                return float(peg_xy[0] + (rot_z(wrap(t - ps))[:2, :2] @ lever)[0])

            cands = [k * np.pi / 2 for k in range(-4, 5)]
            reachable = [t for t in cands if final_x(t) <= peg_xy[0] + 0.01] or cands
            choice["k"] = min(reachable, key=lambda t: abs(gy + wrap(t - ps)))
        return rot_z(gy + wrap(choice["k"] - ps)) @ R_DOWN

    def over_peg(z_nut: float | None):
        def target(e):
            p, _ = e.eef_pose()
            npos, _ = nut_pose()
            t = p.copy()
            t[:2] += peg_xy - npos[:2]
            t[2] = lift_z if z_nut is None else p[2] + (z_nut - npos[2])
            return t, place_rot(e)

        return target

    phases = [
        Phase("approach", lambda e: (_site_pos(inner, handle_site) + [0, 0, above], R_grasp), OPEN, 0.01, 0.06, 100),
        Phase("descend", lambda e: (_site_pos(inner, handle_site) + [0, 0, grasp_dz], R_grasp), OPEN, 0.005, 0.08,
              60, speed=0.4),
        Phase("close", lambda e: (e.eef_pose()[0], R_grasp), CLOSE, 1.0, 10.0, 10, min_steps=10, hold=99),
        Phase("lift", lambda e: (np.r_[e.eef_pose()[0][:2], lift_z], e.eef_pose()[1]), CLOSE, 0.015, 1.0, 60),
        Phase("align", over_peg(None), CLOSE, 0.004, 0.03, 120, hold=3),
        Phase("lower", over_peg(release_nut_z), CLOSE, 0.004, 0.04, 60, hold=2, speed=0.4),
        Phase("release", lambda e: (e.eef_pose()[0], e.eef_pose()[1]), OPEN, 1.0, 10.0, 8, min_steps=8, hold=99),
        Phase("retreat", lambda e: (np.r_[peg_xy, lift_z + 0.03], e.eef_pose()[1]), OPEN, 0.01, 1.0, 40),
    ]
    return ScriptedExpert(phases, rng.uniform(0.5, 1.0), noise * rng.uniform(0.5, 1.5), rng)


EXPERTS: dict[str, Callable[..., ScriptedExpert]] = {
    "lift": lift_expert,
    "can": can_expert,
    "square": square_expert,
    "square_d0": square_expert,
}


# ------------------------------------------------------------------------------------------------ recording
class Stats(NamedTuple):
    attempts: int
    successes: int

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.attempts, 1)


def record_episode(env, policy: Callable[[Any], np.ndarray], *, max_steps: int | None = None,
                   idle_after_done: int = 10, done_fn: Callable[[], bool] | None = None) -> tuple[Episode, bool]:
    """Run `policy(env) -> action` from the env's current (just reset) state; record a robomimic episode.

    Stops at the first success (the env's ``terminated``), at the horizon, or `idle_after_done` steps after
    `done_fn()` turns true. ``dones`` follows robomimic's done_mode 2: 1 at success states and at the last step.
    """
    horizon = env.horizon if max_steps is None else max_steps
    obs_l, next_l, acts, rews, dones, states = [], [], [], [], [], []
    cur = env.obs_dict()
    model_file = env.model_xml()
    success, idle = False, 0
    for _ in range(horizon):
        states.append(env.get_state())
        a = np.asarray(policy(env), np.float64)
        _, r, term, trunc, info = env.step(a)
        nxt = info["obs_dict"]
        obs_l.append(cur)
        next_l.append(nxt)
        acts.append(a)
        rews.append(r)
        success = bool(info["success"])
        dones.append(int(success))
        cur = nxt
        if term or trunc or success:
            break
        if done_fn is not None and done_fn():
            idle += 1
            if idle > idle_after_done:
                break
    dones[-1] = 1
    keys = list(obs_l[0])
    ep = Episode(
        obs={k: np.stack([o[k] for o in obs_l]) for k in keys},
        next_obs={k: np.stack([o[k] for o in next_l]) for k in keys},
        actions=np.asarray(acts, np.float32),
        rewards=np.asarray(rews, np.float32),
        dones=np.asarray(dones, np.int64),
        states=np.asarray(states, np.float64),
        model_file=model_file,
    )
    return ep, success


def keep_successes(
    env,
    n: int,
    new_actor: Callable[[], tuple[Callable[[Any], np.ndarray], Callable[[], bool]]],
    rng: np.random.Generator,
    *,
    max_attempts: int,
    label: str,
    progress: bool = True,
    note: str = "",
) -> tuple[list[Episode], Stats]:
    """Reset, build an actor (`new_actor() -> (act, done_fn)`), record, keep successes, until `n` or `max_attempts`.

    The loop every generator shares: resets draw their seeds from `rng` (so a seed fixes the dataset), the
    success rate is printed (with `note` appended), and too few successes is an error rather than a short file.
    """
    from tqdm.auto import tqdm

    kept: list[Episode] = []
    attempts = 0
    bar = tqdm(total=n, desc=label, disable=not progress, leave=False)
    while len(kept) < n and attempts < max_attempts:
        attempts += 1
        env.reset(seed=int(rng.integers(2**31 - 1)))
        act, done_fn = new_actor()
        ep, ok = record_episode(env, act, done_fn=done_fn)
        if ok:
            kept.append(ep)
            bar.update(1)
        bar.set_postfix(success=f"{len(kept)}/{attempts}")
    bar.close()
    stats = Stats(attempts, len(kept))
    if progress:
        print(f"{label}: {stats.successes}/{stats.attempts} attempts succeeded ({100 * stats.success_rate:.1f} %){note}")
    if len(kept) < n:
        raise RuntimeError(f"{label}: only {len(kept)} of {n} requested episodes succeeded in {attempts} attempts")
    return kept, stats


def generate_episodes(
    task: str,
    n: int,
    seed: int = 0,
    *,
    env=None,
    noise: float = 0.05,
    max_attempts: int | None = None,
    progress: bool = True,
    return_stats: bool = False,
    obs: str = "state",
):
    """`n` successful scripted episodes of `task` (robomimic `Episode`s, state observations by default).

    Attempts continue until `n` successes or `max_attempts` (default 3n + 10); the success rate is printed and,
    with ``return_stats=True``, returned as ``(episodes, Stats)``.
    """
    from csil_lite.envs.robosuite import make

    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task!r}; available: {sorted(EXPERTS)}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    env = make(task, seed=seed, obs=obs) if env is None else env
    rng = np.random.default_rng(seed)

    def new_expert():
        expert = EXPERTS[task](env, rng, noise=noise)
        return expert.act, lambda: expert.done

    episodes, stats = keep_successes(env, n, new_expert, rng, label=f"scripted {task}", progress=progress,
                                     max_attempts=3 * n + 10 if max_attempts is None else max_attempts)
    return (episodes, stats) if return_stats else episodes


def success_rate(task: str, n_attempts: int, seed: int = 0, *, noise: float = 0.05, progress: bool = True) -> Stats:
    """Run exactly `n_attempts` scripted episodes and count successes (for benchmarks)."""
    from tqdm.auto import tqdm

    from csil_lite.envs.robosuite import make

    env = make(task, seed=seed)
    rng = np.random.default_rng(seed)
    ok = 0
    for i in tqdm(range(n_attempts), desc=f"scripted {task}", disable=not progress, leave=False):
        env.reset(seed=int(rng.integers(2**31 - 1)))
        expert = EXPERTS[task](env, rng, noise=noise)
        _, s = record_episode(env, expert.act, done_fn=lambda: expert.done)
        ok += int(s)
    env.close()
    return Stats(n_attempts, ok)


__all__ = [
    "EXPERTS",
    "Phase",
    "R_DOWN",
    "ScriptedExpert",
    "Stats",
    "generate_episodes",
    "keep_successes",
    "pose_action",
    "record_episode",
    "success_rate",
]
