"""A MimicGen-style demonstration generator, written from the paper's description (Mandlekar et al., 2023).

The idea: a task is a sequence of object-centric subtasks (Square: "grasp the nut", then "put it on the peg").
Within a subtask the end effector moves *relative to one reference object*, so a source demo's segment can be
replayed in a new scene by expressing its poses in that object's frame and mapping them into the new object's
frame:

    T_new(t) = T_obj_new · T_obj_src⁻¹ · T_src(t)                                                   (1)

where T_obj_* is the reference object's pose at the start of the segment. Segments are chained with short
linear/slerp bridges from wherever the gripper is, executed with the same delta-OSC controller (with action
noise), and an attempt is kept only if the task succeeds.

Our choices where the paper leaves room (and why):
- the poses replayed are the *controller targets* rebuilt from each source action (pose + scaled delta);
- one source demo is used for all subtasks of an attempt, chosen among the ``k`` nearest by the first reference
  object's pose (position and yaw): mixing sources would pair one demo's grasp with another's placement, and a
  nearby source keeps the wrist rotation needed by (1) small;
- subtask boundaries come from robosuite's own grasp check on the saved states (no manual annotation).

This module only needs a ``csil_lite.envs.robosuite`` environment and episodes with ``states`` (e.g. from
:mod:`csil_lite.data.scripted` or a robomimic file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from csil_lite.data.robomimic import Episode
from csil_lite.data.scripted import POS_SCALE, ROT_SCALE, Stats, clip_norm, keep_successes, pose_action, yaw_of

Pose = np.ndarray  # 4x4 homogeneous transform


def make_pose(pos: np.ndarray, rot: np.ndarray) -> Pose:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rot, pos
    return T


def inv_pose(T: Pose) -> Pose:
    R, p = T[:3, :3], T[:3, 3]
    return make_pose(-R.T @ p, R.T)


# ---------------------------------------------------------------------------------------------- task specs
@dataclass(frozen=True)
class Subtask:
    """`ref(env) -> 4x4` pose of the reference object; `ends(env) -> bool` fires at the subtask's end
    (None: the subtask runs to the end of the demo)."""

    name: str
    ref: Callable[[object], Pose]
    ends: Callable[[object], bool] | None


def _body_pose(env, body_id: int) -> Pose:
    d = env.sim.data
    return make_pose(d.body_xpos[body_id].copy(), d.body_xmat[body_id].reshape(3, 3).copy())


def _world(env) -> Pose:
    return np.eye(4)


def _grasping(env, model) -> bool:
    inner = env.env
    return bool(inner._check_grasp(gripper=inner.robots[0].gripper["right"], object_geoms=model.contact_geoms))


def subtasks_for(task: str, env) -> list[Subtask]:
    """The object-centric decomposition of each supported task."""
    inner = env.env
    if task in ("square", "square_d0"):
        nut = inner.nuts[inner.nut_id]
        nut_id, peg_id = inner.obj_body_id[nut.name], inner.peg1_body_id
        return [
            Subtask("grasp_nut", lambda e: _body_pose(e.env, nut_id), lambda e: _grasping(e, nut)),
            Subtask("place_on_peg", lambda e: _body_pose(e.env, peg_id), None),
        ]
    if task == "lift":
        return [Subtask("grasp_and_lift", lambda e: _body_pose(e.env, e.env.cube_body_id), None)]
    if task == "can":
        obj = inner.objects[inner.object_id]
        body = inner.obj_body_id[obj.name]
        return [
            Subtask("grasp_can", lambda e: _body_pose(e.env, body), lambda e: _grasping(e, obj)),
            Subtask("place_in_bin", _world, None),
        ]
    raise ValueError(f"no MimicGen subtask decomposition for task {task!r}; available: square, square_d0, lift, can")


# -------------------------------------------------------------------------------------------- source demos
@dataclass
class Segment:
    ref_pose: Pose  # reference object pose at the segment's first step (source scene)
    targets: np.ndarray  # [L, 4, 4] controller target poses
    grips: np.ndarray  # [L] gripper actions


@dataclass
class SourceDemo:
    segments: list[Segment]
    first_ref: Pose  # first subtask's reference pose, used to pick the nearest source


def annotate(env, task: str, episode: Episode, *, boundary_offset: int = 0) -> SourceDemo:
    """Replay a source episode's saved states to find subtask boundaries and record the poses needed by (1).

    The env must be the same task (the scene is rebuilt from the episode's ``model_file`` when present).
    """
    if episode.states is None:
        raise ValueError("annotate: the source episode has no `states`; MimicGen needs the MuJoCo states")
    states, actions = np.asarray(episode.states), np.asarray(episode.actions, np.float64)
    env.reset_to(states[0], model_file=episode.model_file)
    subs = subtasks_for(task, env)
    eef, refs, signals = [], [], []
    for s in states:
        env.reset_to(s)
        eef.append(make_pose(*env.eef_pose()))
        refs.append([st.ref(env) for st in subs])
        signals.append([bool(st.ends(env)) if st.ends is not None else False for st in subs])
    T = len(states)
    # controller targets from the delta actions: p + 0.05 a_pos, exp(0.5 a_rot) R
    targets = np.empty((T, 4, 4))
    for t in range(T):
        R = Rotation.from_rotvec(actions[t, 3:6] * ROT_SCALE).as_matrix() @ eef[t][:3, :3]
        targets[t] = make_pose(eef[t][:3, 3] + actions[t, :3] * POS_SCALE, R)
    bounds, start = [], 0
    for j, st in enumerate(subs):
        if st.ends is None or j == len(subs) - 1:
            end = T
        else:
            hits = [t for t in range(start, T) if signals[t][j]]
            if not hits:
                raise ValueError(f"annotate: subtask {st.name!r} never ends in this source demo ({T} steps)")
            end = min(T, hits[0] + 1 + boundary_offset)
        bounds.append((start, end))
        start = end
    segments = [Segment(refs[a][j], targets[a:b], actions[a:b, 6].copy()) for j, (a, b) in enumerate(bounds)]
    return SourceDemo(segments, refs[0][0])


# -------------------------------------------------------------------------------------------- generation
def _pose_distance(a: Pose, b: Pose) -> float:
    """Metres + radians/π·0.1: a yaw error of π weighs like 10 cm of position error."""
    dyaw = np.angle(np.exp(1j * (yaw_of(a[:3, :3]) - yaw_of(b[:3, :3]))))
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3]) + 0.1 * abs(dyaw) / np.pi)


def _bridge(start: Pose, end: Pose, max_step: float = 0.025, min_steps: int = 5) -> np.ndarray:
    """Linear position / slerp rotation poses from `start` (exclusive) to `end` (inclusive)."""
    ang = np.linalg.norm(Rotation.from_matrix(end[:3, :3] @ start[:3, :3].T).as_rotvec())
    n = int(max(min_steps, np.ceil(np.linalg.norm(end[:3, 3] - start[:3, 3]) / max_step), np.ceil(ang / 0.2)))
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([start[:3, :3], end[:3, :3]])))
    out = np.empty((n, 4, 4))
    for i, u in enumerate(np.arange(1, n + 1) / n):
        out[i] = make_pose((1 - u) * start[:3, 3] + u * end[:3, 3], slerp([u]).as_matrix()[0])
    return out


class _Plan:
    """Feeds waypoints to the controller; a new segment is transformed when it is reached (its object may
    have moved since the episode started, e.g. the nut is carried during the peg subtask)."""

    def __init__(self, task: str, env, source: SourceDemo, noise: float, rng: np.random.Generator) -> None:
        self.subs = subtasks_for(task, env)
        self.source, self.noise, self.rng = source, noise, rng
        self.seg = -1
        self.queue: list[tuple[Pose, float]] = []
        self.grip = -1.0

    @property
    def done(self) -> bool:
        return self.seg >= len(self.source.segments) - 1 and not self.queue

    def _next_segment(self, env) -> None:
        self.seg += 1
        seg = self.source.segments[self.seg]
        M = self.subs[self.seg].ref(env) @ inv_pose(seg.ref_pose)  # eq. (1)
        poses = np.einsum("ij,tjk->tik", M, seg.targets)
        cur = make_pose(*env.eef_pose())
        bridge = _bridge(cur, poses[0])
        self.queue = [(p, self.grip) for p in bridge] + list(zip(poses, seg.grips))

    def act(self, env) -> np.ndarray:
        if not self.queue and self.seg < len(self.source.segments) - 1:
            self._next_segment(env)
        pos, rot = env.eef_pose()
        if not self.queue:
            return np.r_[np.zeros(6), self.grip]
        target, self.grip = self.queue.pop(0)
        a = pose_action(pos, rot, target[:3, 3], target[:3, :3], float(self.grip), speed=1.0, rot_cap=1.0)
        a[:6] += self.noise * self.rng.standard_normal(6)
        a[:3] = clip_norm(a[:3], np.sqrt(3.0))
        return np.clip(a, -1.0, 1.0)


def generate(
    task: str,
    n: int,
    sources: Sequence[Episode],
    seed: int = 0,
    *,
    env=None,
    noise: float = 0.05,
    nearest_k: int = 3,
    max_attempts: int | None = None,
    progress: bool = True,
) -> tuple[list[Episode], Stats]:
    """`n` successful episodes generated from a few source episodes; returns (episodes, Stats(attempts, n))."""
    from csil_lite.envs.robosuite import make

    if len(sources) == 0:
        raise ValueError("mimicgen.generate: no source episodes")
    env = make(task, seed=seed) if env is None else env
    annotated = [annotate(env, task, ep) for ep in sources]
    rng = np.random.default_rng(seed)

    def new_plan():
        ref = subtasks_for(task, env)[0].ref(env)
        order = np.argsort([_pose_distance(ref, s.first_ref) for s in annotated])
        source = annotated[int(rng.choice(order[: max(1, nearest_k)]))]
        plan = _Plan(task, env, source, noise, rng)
        return plan.act, lambda: plan.done

    out, stats = keep_successes(env, n, new_plan, rng, label=f"mimicgen {task}", progress=progress,
                                max_attempts=5 * n + 20 if max_attempts is None else max_attempts,
                                note=f" from {len(sources)} source demos")
    return out, stats


__all__ = ["SourceDemo", "Subtask", "annotate", "generate", "inv_pose", "make_pose", "subtasks_for"]
