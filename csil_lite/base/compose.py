"""Composition of a frozen base policy's action with the small policy's: the executed action, at the edge.

A base policy (pi0.5, or the stand-in) proposes a_b at every step (a chunk every N steps, `ChunkExecutor`); the
small policy (HetStat, trained by CSIL++ or XQC+OD) proposes its own a_pi; the environment executes
`composition.execute(a_b, a_pi)`. This happens on the environment side of `act` (`ChunkedBaseEnv(...,
compose=composition.execute)`): the jitted update never sees the base, and nothing in `agents/` knows there is
one. `assembly.COMPOSITIONS` maps `BaseConfig.compose` to the classes here.

- `Ensemble` (paper eq. 3): a = (a_b + a_pi) / 2.
- `Residual` (paper eq. 2 in the thesis's form, §6.2): a = tanh(atanh(a_pi) + atanh(clip(a_b))). With
  a_pi = tanh(u), u ~ N(mu, sigma) the small policy's tanh-Gaussian, the executed action is tanh(z) with
  z ~ N(mu + atanh(clip(a_b)), sigma): the latent mean shifted by the base's latent action, exactly the thesis's
  q(a | s, a_b) (`Residual.distribution`; it is computed with tanh's addition formula, (a_pi + b) / (1 + a_pi b),
  which needs no atanh of a_pi and stays finite at +-1). `Residual(scale=s)` is the residual peers' bounded
  form instead, clip(a_b + s a_pi, -1, 1) (ResFiT: s = 0.1; Policy Decorator: 0.03-0.3).

Executed actions always lie in [-1, 1]. The base's action is clipped into the box first (a proposal outside it
would be clipped by the robot's controller anyway); the residual clips it to +-`threshold` (the reference's
0.999, `distributions.THRESHOLD`) before atanh, so a saturated base action (a closed gripper at +-1) shifts the
latent by atanh(0.999) = 3.8, not by infinity, and the small policy can still move it.

**What the reward, the critic and the replay see (both modes): the small policy's own action a_pi.** The replay
stores a_pi as `action` and the base's proposal as `base_action`; the executed action is `execute(base_action,
action)`, recomputed exactly when needed. The base action is no input of the policy or critic networks. Why:

1. Coherence. CSIL's guarantee is that the BC policy is optimal for its own log-ratio reward *in the
   coordinates it was fitted in*. The small policy is fitted, rewarded, regularised and evaluated by the critic
   in its own coordinates, so the guarantee carries over unchanged; the base is part of the environment the small
   policy acts in. For the ensemble this is the paper's setting (the HetStat's loss landscape is not changed by
   the base, thesis ch. 4).
2. For the residual it is the thesis's reward, not an approximation of it: with the prior shifted by the same
   a_b, log q(a|s,a_b) - log p(a|s,a_b) at the executed a equals log q(a_pi|s) - log p(a_pi|s) at the own action
   (the shared tanh Jacobians cancel, the shift cancels in the latent difference), and so does the exact latent
   KL (`test_compose.py` pins both). Only with a base-independent prior (`prior='uniform'`, XQC+OD's entropy
   bonus) do the two differ, by the Jacobian of a_pi -> a; we keep the own action there too, so the entropy is
   the small policy's, as in SAC.
3. The jitted update stays base-blind: no `base_action` (nor the next state's) needs to reach it.

The price, stated: the critic Q(s, a_pi) must infer the base's action from the state (as the small ensemble
policy must); the thesis's Q(s, a_b, a) and ResFiT's/Policy Decorator's Q(s, a_executed) see it. A critic input
for a_b is a later option; `Transitions.base_action` already reaches every batch for it.

**BC start.** The demonstrations carry the base's proposals at their states (`with_base_actions`); `for_learner`
maps them into the small policy's coordinates with `bc_target`, and BC, SARSA and the coherent reward are fitted
there:
- ensemble: the demonstrated action itself (the paper: the small policy predicts "full single-step actions");
  on a demonstrated state the BC start then executes the midpoint (a_b + a_E) / 2;
- residual: the own action that executes the demonstrated one, tanh(atanh a_E - atanh b) = (a_E - b)/(1 - a_E b)
  (the same BC optimum as the thesis's BC of the shifted q(a_E | s, a_b): the two log-likelihoods differ by a
  Jacobian that does not depend on the parameters); the BC start executes a_E. With `scale` the closest
  reachable action, clip((a_E - a_b)/s): a_E wherever |a_E - a_b| <= s.
- `BaseConfig.residual_init_scale` (ResFiT's zero-initialised last layer): `residual_start` multiplies the
  policy's mean layer by it, 0 = the residual's latent mean is 0 and the executed action is exactly the base's.

A consequence worth knowing (tested with a base queried every step, where it does not arise): with open-loop
chunks (N > 1) the base's action at a state depends on where in its chunk the step falls, which the state does
not show. The ensemble's BC target (a_E) does not depend on it; the residual's does, so a residual fitted on the
state alone can only match the demonstrations on average over chunk phases (ResFiT's actor sees the base
action for this reason: a policy input for a_b is the other later option).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite import obs as obs_lib
from csil_lite.base.policy import BasePolicy, ChunkExecutor, lowdim_request
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import THRESHOLD, tanh_normal

__all__ = ["BaseEdge", "Ensemble", "NoBase", "Residual", "for_learner", "residual_start", "with_base_actions"]


def _xp(*arrays: Any):
    """jax.numpy for jax arrays (tracers included), numpy otherwise: the edge runs numpy, tests and jit jax."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


class Ensemble(NamedTuple):
    """a = (a_b + a_pi) / 2 (paper eq. 3; book: eq-ch9-ensemble); the small policy learns the full action, BC
    on the demonstrated one."""

    def execute(self, base_action: Any, action: Any) -> Any:
        """The executed action in [-1, 1] from the base's action and the small policy's own."""
        xp = _xp(base_action, action)
        return xp.clip(0.5 * (xp.clip(base_action, -1.0, 1.0) + xp.clip(action, -1.0, 1.0)), -1.0, 1.0)

    def bc_target(self, base_action: Any, demo_action: Any) -> Any:
        """The small policy's BC target at a demonstrated state: the demonstrated action (the paper's rule)."""
        return demo_action

    def learner_action(self, action: Any, executed: Any) -> Any:
        """What the reward, the critic and the replay see: the small policy's own action (module docstring)."""
        return action


class Residual(NamedTuple):
    """The thesis's residual: the small policy's latent mean shifted by atanh(clip(a_b)); with `scale`, the
    peers' bounded clip(a_b + scale * a_pi). See the module docstring for the BC start and what is learnt."""

    scale: float | None = None
    threshold: float = THRESHOLD

    def base_latent(self, base_action: Any) -> Any:
        """atanh(clip(a_b, +-threshold)): the shift of the latent mean (thesis §6.2)."""
        xp = _xp(base_action)
        return xp.arctanh(xp.clip(base_action, -self.threshold, self.threshold))

    def execute(self, base_action: Any, action: Any) -> Any:
        """The executed action in [-1, 1]: tanh(atanh(a_pi) + atanh(b)) = (a_pi + b) / (1 + a_pi b), b the
        clipped base action (1 + a_pi b >= 1 - threshold > 0); or clip(a_b + scale a_pi, -1, 1).
        Book: eq-ch9-residual."""
        xp = _xp(base_action, action)
        a = xp.clip(action, -1.0, 1.0)
        if self.scale is None:
            b = xp.clip(base_action, -self.threshold, self.threshold)
            out = (a + b) / (1.0 + a * b)
        else:
            out = xp.clip(base_action, -1.0, 1.0) + self.scale * a
        return xp.clip(out, -1.0, 1.0)

    def bc_target(self, base_action: Any, demo_action: Any) -> Any:
        """The own action that executes `demo_action` on top of `base_action` (the inverse of `execute`):
        (a_E - b) / (1 - a_E b) = tanh(atanh a_E - atanh b); with `scale`, the closest reachable one."""
        xp = _xp(base_action, demo_action)
        e = xp.clip(demo_action, -1.0, 1.0)
        if self.scale is None:
            b = xp.clip(base_action, -self.threshold, self.threshold)
            out = (e - b) / (1.0 - e * b)
        else:
            out = (e - xp.clip(base_action, -1.0, 1.0)) / self.scale
        return xp.clip(out, -1.0, 1.0)

    def learner_action(self, action: Any, executed: Any) -> Any:
        """What the reward, the critic and the replay see: the small policy's own action (module docstring)."""
        return action

    def distribution(self, mean: jax.Array, std: jax.Array, base_action: jax.Array):
        """The executed action's distribution q(a | s, a_b) = tanh(N(mean + atanh(clip(a_b)), std)) (thesis
        §6.2), given the small policy's latent (mean, std): a `tanh_normal` whose log-probabilities are those of
        the shifted latent, with the reference's clipping at +-threshold. Only for the unbounded form: the
        peers' clip(a_b + s a_pi) puts probability mass on the box's faces and has no such density."""
        if self.scale is not None:
            raise ValueError(f"Residual(scale={self.scale}).distribution: the bounded residual clip(a_b + s a_pi) "
                             "has no tanh-Gaussian density; the learner works with the own action a_pi")
        return tanh_normal(mean + self.base_latent(jnp.asarray(base_action, jnp.asarray(mean).dtype)), std,
                           self.threshold)


def residual_start(params: Any, init_scale: float | None) -> Any:
    """The small policy's parameters at the start of RL: `params` (None), or with its last mean layer multiplied
    by `init_scale` (ResFiT's near-zero last layer; 0: latent mean 0, the residual executes the base exactly)."""
    if init_scale is None:
        return params
    from csil_lite.nets.policy import scale_mean_head

    return scale_mean_head(params, float(init_scale))


def _episode_bounds(last: np.ndarray) -> list[tuple[int, int]]:
    ends = np.flatnonzero(np.asarray(last) == 1)
    if len(last) == 0 or len(ends) == 0 or ends[-1] != len(last) - 1:
        raise ValueError("with_base_actions: the demonstrations must be whole episodes in order (the last row of "
                         "each has last=1), as episodes_to_transitions builds them")
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [(int(s), int(e) + 1) for s, e in zip(starts, ends)]


def with_base_actions(demos: Transitions, base: BasePolicy, chunk: int | None = None,
                      make_request: Callable[[Any], Mapping[str, Any]] = lowdim_request) -> Transitions:
    """`demos` with `base_action` = the base's proposal at every demonstrated state, as the chunk executor
    produces it running each episode from its start (reset per episode; a chunk every `chunk` steps).

    The rows must be whole episodes in order (`episodes_to_transitions`); within an episode each row's
    `next_obs` must be the next row's `obs` (checked: a shuffled or subsampled set would label wrong states).
    """
    bounds = _episode_bounds(demos.last)
    for s, e in bounds:
        if e - s > 1:
            now = obs_lib.take(demos.obs, slice(s + 1, e))
            before = obs_lib.take(demos.next_obs, slice(s, e - 1))
            if not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(now), jax.tree.leaves(before))):
                raise ValueError(f"with_base_actions: rows {s}..{e - 1} are not one episode in order (next_obs of a "
                                 "row differs from the next row's obs)")
    ex = ChunkExecutor(base, chunk, make_request)
    out = np.zeros(demos.action.shape, np.float32)
    for s, e in bounds:
        ex.reset()
        for i in range(s, e):
            out[i] = ex.step(jax.tree.map(lambda x: np.asarray(x[i]), demos.obs))
    return demos._replace(base_action=out)


def for_learner(composition: Any, demos: Transitions) -> Transitions:
    """The demonstrations in the small policy's own coordinates, for BC, SARSA, the coherent reward and the demo
    half of every batch: `action` and `next_action` replaced by `composition.bc_target(base, demonstrated)`
    (the next action with the next row's base action; zeros where `last`). The ensemble's is the identity."""
    if demos.base_action is None:
        raise ValueError("for_learner: the demonstrations carry no base actions (with_base_actions first)")
    base = np.asarray(demos.base_action, np.float32)
    last = np.asarray(demos.last) == 1
    next_base = np.concatenate([base[1:], np.zeros_like(base[:1])], axis=0)
    action = np.asarray(composition.bc_target(base, np.asarray(demos.action, np.float32)), np.float32)
    next_action = np.asarray(composition.bc_target(next_base, np.asarray(demos.next_action, np.float32)), np.float32)
    next_action[last] = 0.0
    return demos._replace(action=action, next_action=next_action)


# -- the edge: what a run does differently with a base, as one component (`assembly.base_edge` builds it) ------


class NoBase(NamedTuple):
    """A run without a base policy: the environment, the demonstrations and the start are left as they are."""

    stores_base_actions: bool = False

    def wrap(self, env: Any) -> Any:
        return env

    def label(self, demos: Transitions) -> Transitions:
        return demos

    def start(self, params: Any) -> Any:
        return params

    def base_action(self, info: Mapping[str, Any]) -> None:
        return None


class BaseEdge(NamedTuple):
    """A frozen base acting next to the small policy, at the environment's edge (the loop calls these four
    methods and nothing else; the update never sees the base):

    - `wrap(env)`: the env with its own base (`spawn()`: one per env, so each env's chunk and noise are its
      own) queried every `chunk` steps and the executed action `composition.execute(a_b, a_pi)`;
    - `label(demos)`: the demonstrations with the base's proposals and in the small policy's coordinates
      (`with_base_actions`, then `for_learner`): what BC, SARSA, the coherent reward and the batches see;
    - `start(params)`: the small policy's parameters at the start of RL (`residual_start`);
    - `base_action(info)`: the base action the step's executed action was composed with (from the `info` of
      the `reset` or `step` that produced the observation acted on), stored with the transition.
    """

    spawn: Callable[[], BasePolicy]
    composition: Any
    chunk: int
    init_scale: float | None = None
    stores_base_actions: bool = True

    def wrap(self, env: Any) -> Any:
        from csil_lite.base.env import ChunkedBaseEnv

        return ChunkedBaseEnv(env, self.spawn(), self.chunk, compose=self.composition.execute, owns_base=True)

    def label(self, demos: Transitions) -> Transitions:
        base = self.spawn()
        try:
            return for_learner(self.composition, with_base_actions(demos, base, self.chunk))
        finally:
            close = getattr(base, "close", None)  # a server's connection; a stand-in copy has nothing to close
            if close is not None:
                close()

    def start(self, params: Any) -> Any:
        return residual_start(params, self.init_scale)

    def base_action(self, info: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(info["base_action"], np.float32)
