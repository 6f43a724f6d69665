"""Tabular soft RL and coherent imitation on small gridworlds (book chapters 1 and 2).

Everything here is exact: transition tensors are explicit, policy evaluation is a linear solve and the
discounted occupancy is computed in closed form. That makes the claim CSIL rests on checkable to machine
precision, together with its conditions: a behaviour-cloned policy q is a fixed point of soft policy
iteration under its own coherent reward `alpha * (log q - log prior)` when the KL is taken to the prior,
the SPI temperature `beta` equals the reward scale `alpha`, and either no state terminates or the reward
is not shifted. The online CSIL objective (KL to q itself) has a different, sharper optimum
(`online_improvement`), and with a success-absorbing goal a constant reward shift moves the optimum as well
(`minimum_time_bias`).

Notation (the book's): q = pi_bc is the BC policy, pi the policy being learned, p = prior the reference
density, alpha the coherent reward's scale, beta the temperature of the KL regulariser.

The gridworld follows the CSIL reference notebook (10x10, four moves clamped at the walls, gamma 0.95, a goal
worth +1/(1-gamma) that returns the agent to the start, a trap worth -1/(1-gamma)) and adds a wind probability
so the distribution shift can be swept.

Numerics run in float64 inside `jax.enable_x64(True)` (without touching the global JAX config, so other code in
the same process keeps its float32 defaults); public functions return numpy arrays.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

ArrayLike = Any  # numpy or jax array

# The reference grid: state index = y * WIDTH + x; actions move x+1, x-1, y+1, y-1 (clamped at the walls).
WIDTH = 10
GAMMA = 0.95
GOAL = 90  # (x=0, y=9): reward +1/(1-gamma) for every action, then back to the start
TRAP = 30  # (x=0, y=3): reward -1/(1-gamma) for every action, not absorbing
START = 0  # (x=0, y=0)
ACTIONS = ("right", "left", "up", "down")
ACTION_DELTAS = ((1, 0), (-1, 0), (0, 1), (0, -1))
BC_EPS = 1e-6  # floor on BC probabilities, so log pi_BC (and the coherent reward) stays finite

__all__ = [
    "TabularMDP", "SoftSolution", "Benchmark", "make_mdp", "gridworld", "uniform_prior", "validate_policy",
    "boltzmann_policy", "soft_value", "kl_to_prior", "policy_entropy", "soft_bellman_operator", "policy_evaluation",
    "soft_value_iteration", "soft_value_iteration_trace", "soft_policy_iteration", "soft_policy_iteration_trace",
    "value_iteration", "greedy_policy", "occupancy", "state_action_occupancy", "expected_return",
    "soft_expert", "collect_demos", "bc_policy", "coherent_reward", "classifier_reward", "maxent_irl",
    "csil_policy", "classifier_irl_policy", "gridworld_benchmark", "plot_grid", "absorbing_states",
    "shifted_coherent_reward", "coherent_reward_bound", "demo_reward_max", "online_value",
    "online_improvement", "total_variation", "expected_visits", "ShiftBias", "minimum_time_bias",
]


# --------------------------------------------------------------------------------------------------- MDPs
class TabularMDP(NamedTuple):
    """A finite discounted MDP: P[s, a, s'], r[s, a], initial distribution mu0[s], discount gamma."""

    P: np.ndarray
    r: np.ndarray
    mu0: np.ndarray
    gamma: float

    @property
    def n_states(self) -> int:
        return int(self.P.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.P.shape[1])


class SoftSolution(NamedTuple):
    """Result of a soft solver: Boltzmann policy pi[s, a], soft Q[s, a] and soft V[s]."""

    pi: np.ndarray
    Q: np.ndarray
    V: np.ndarray


def _check_shape(name: str, x: np.ndarray, expected: tuple[int, ...]) -> None:
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(x.shape)}")


def _check_distribution(name: str, x: np.ndarray, axis: int, atol: float) -> None:
    """Rows along `axis` must be finite, non-negative and sum to 1; name the worst row if not."""
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name}: non-finite entry at index {tuple(int(i) for i in bad)}")
    if np.any(x < 0):
        bad = np.argwhere(x < 0)[0]
        raise ValueError(f"{name}: negative probability {x[tuple(bad)]:.3g} at index {tuple(int(i) for i in bad)}")
    sums = x.sum(axis=axis)
    err = np.abs(sums - 1.0)
    if np.any(err > atol):
        if err.ndim == 0:
            raise ValueError(f"{name}: entries must sum to 1 (atol {atol:g}); they sum to {float(sums):.6g}")
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        raise ValueError(
            f"{name}: rows must sum to 1 along axis {axis} (atol {atol:g}); "
            f"row {tuple(int(i) for i in worst)} sums to {sums[worst]:.6g}"
        )


def make_mdp(P: ArrayLike, r: ArrayLike, mu0: ArrayLike, gamma: float, *, atol: float = 1e-8) -> TabularMDP:
    """Build a validated `TabularMDP` (float64 numpy arrays); errors name the bad field, shape or row."""
    P = np.asarray(P, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    mu0 = np.asarray(mu0, dtype=np.float64)
    if P.ndim != 3:
        raise ValueError(f"P: expected shape (S, A, S), got {P.shape} ({P.ndim} dims)")
    S, A, S2 = P.shape
    if S2 != S:
        raise ValueError(f"P: expected shape (S, A, S) with matching S, got {P.shape}")
    _check_shape("r", r, (S, A))
    _check_shape("mu0", mu0, (S,))
    if not np.all(np.isfinite(r)):
        raise ValueError("r: contains non-finite entries")
    _check_distribution("P", P, axis=2, atol=atol)
    _check_distribution("mu0", mu0, axis=0, atol=atol)
    gamma = float(gamma)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma: expected 0 <= gamma < 1, got {gamma}")
    return TabularMDP(P, r, mu0, gamma)


def _check_mdp(mdp: TabularMDP) -> None:
    """Cheap shape check for MDPs that may have been edited with `_replace` after `make_mdp`."""
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"mdp: expected TabularMDP, got {type(mdp).__name__}")
    S, A = np.shape(mdp.P)[:2]
    _check_shape("mdp.P", np.asarray(mdp.P), (S, A, S))
    _check_shape("mdp.r", np.asarray(mdp.r), (S, A))
    _check_shape("mdp.mu0", np.asarray(mdp.mu0), (S,))


def validate_policy(name: str, pi: ArrayLike, n_states: int, n_actions: int, *, atol: float = 1e-6) -> np.ndarray:
    """Check a policy table pi[s, a] (shape and normalisation) and return it as float64."""
    pi = np.asarray(pi, dtype=np.float64)
    _check_shape(name, pi, (n_states, n_actions))
    _check_distribution(name, pi, axis=1, atol=atol)
    return pi


def uniform_prior(n_states: int, n_actions: int) -> np.ndarray:
    """The uniform action prior p(a|s) = 1/|A| (the maximum-entropy special case of the KL prior)."""
    return np.full((n_states, n_actions), 1.0 / n_actions)


def _coords(s: int, width: int) -> tuple[int, int]:
    return s % width, s // width


def _index(x: int, y: int, width: int) -> int:
    x = min(max(x, 0), width - 1)
    y = min(max(y, 0), width - 1)
    return y * width + x


def gridworld(
    wind: float = 0.0,
    *,
    width: int = WIDTH,
    gamma: float = GAMMA,
    goal: int = GOAL,
    trap: int | None = TRAP,
    start: int = START,
    success: str = "restart",
) -> TabularMDP:
    """The reference's sparse gridworld; `wind` is the probability that any move is replaced by a push to x+1.

    `success="restart"` (the reference): every action at the goal pays +1/(1-gamma) and returns to the start
    distribution, so the task repeats and no state terminates. `success="absorb"`: reaching the goal ends the
    episode. The goal then loops on itself under every action with zero reward (an absorbing state, see
    `absorbing_states`), and the +1/(1-gamma) is paid on the step that enters it. Either way the goal is
    exempt from the wind. `wind=0.5` reproduces the reference's windy dynamics exactly (an intended move
    succeeds with probability 1/2, or 1 if it already goes right).
    """
    if not 0.0 <= wind <= 1.0:
        raise ValueError(f"wind: expected a probability in [0, 1], got {wind}")
    if success not in ("restart", "absorb"):
        raise ValueError(f"success: expected 'restart' or 'absorb', got {success!r}")
    S, A = width * width, len(ACTIONS)
    for name, s in (("goal", goal), ("trap", trap), ("start", start)):
        if s is not None and not 0 <= s < S:
            raise ValueError(f"{name}: expected a state index in [0, {S}), got {s}")
    mu0 = np.zeros(S)
    mu0[start] = 1.0
    P = np.zeros((S, A, S))
    for s in range(S):
        x, y = _coords(s, width)
        if s == goal:
            if success == "restart":
                P[s, :, :] = mu0
            else:
                P[s, :, s] = 1.0
            continue
        push = _index(x + 1, y, width)
        for a, (dx, dy) in enumerate(ACTION_DELTAS):
            P[s, a, _index(x + dx, y + dy, width)] += 1.0 - wind
            P[s, a, push] += wind
    r = np.zeros((S, A))
    if success == "restart":
        r[goal, :] = 1.0 / (1.0 - gamma)
    else:
        r += P[:, :, goal] / (1.0 - gamma)
        r[goal, :] = 0.0
    if trap is not None:
        r[trap, :] = -1.0 / (1.0 - gamma)
    return make_mdp(P, r, mu0, gamma)


# ------------------------------------------------------------------------------------------ soft operators
def _x64(fn: Callable) -> Callable:
    """Run `fn` with float64 enabled locally and hand back numpy arrays."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            out = fn(*args, **kwargs)
            return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, out)

    return wrapper


def _prior_or_uniform(mdp: TabularMDP, prior: ArrayLike | None) -> np.ndarray:
    if prior is None:
        return uniform_prior(mdp.n_states, mdp.n_actions)
    return validate_policy("prior", prior, mdp.n_states, mdp.n_actions)


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not beta > 0.0:
        raise ValueError(f"beta (temperature): expected > 0, got {beta}; use value_iteration for beta = 0")
    return beta


def _log(p: jax.Array) -> jax.Array:
    return jnp.log(jnp.where(p > 0, p, 1.0)) + jnp.where(p > 0, 0.0, -jnp.inf)


def _boltzmann(Q: jax.Array, beta: float, log_prior: jax.Array) -> jax.Array:
    """pi(a|s) = p(a|s) exp((Q(s,a) - V(s)) / beta) of eq-boltzmann, as a softmax of Q / beta + log p."""
    return jax.nn.softmax(Q / beta + log_prior, axis=1)


def _soft_v(Q: jax.Array, beta: float, log_prior: jax.Array) -> jax.Array:
    """V(s) = beta log sum_a p(a|s) exp(Q(s,a) / beta) of eq-soft-value (log p = -inf where p = 0)."""
    return beta * logsumexp(Q / beta + log_prior, axis=1)


def _kl(pi: jax.Array, prior: jax.Array) -> jax.Array:
    """KL(pi(.|s) || prior(.|s)) per state, with 0 log 0 = 0."""
    ratio = jnp.where(pi > 0, jnp.log(jnp.where(pi > 0, pi, 1.0)) - _log(prior), 0.0)
    return jnp.sum(pi * ratio, axis=1)


def _backup(P: jax.Array, r: jax.Array, gamma: float, V: jax.Array) -> jax.Array:
    return r + gamma * jnp.einsum("sat,t->sa", P, V)


def _evaluate(P, r, gamma, pi, beta, prior):
    """Exact soft policy evaluation, eq-soft-eval: V = sum_a pi (r + gamma P V) - beta KL(pi || prior) is
    linear in V, so solve (I - gamma P_pi) V = r_pi - beta KL_pi; returns (Q, V) with Q = r + gamma P V."""
    S = P.shape[0]
    P_pi = jnp.einsum("sa,sat->st", pi, P)
    r_pi = jnp.sum(pi * r, axis=1) - beta * _kl(pi, prior)
    V = jnp.linalg.solve(jnp.eye(S) - gamma * P_pi, r_pi)
    return _backup(P, r, gamma, V), V


@_x64
def boltzmann_policy(Q: ArrayLike, beta: float, prior: ArrayLike) -> np.ndarray:
    """pi(a|s) proportional to prior(a|s) exp(Q(s,a)/beta): the KL-regularised greedy step."""
    return _boltzmann(jnp.asarray(Q), _check_beta(beta), _log(jnp.asarray(prior)))


@_x64
def soft_value(Q: ArrayLike, beta: float, prior: ArrayLike) -> np.ndarray:
    """V(s) = beta log sum_a prior(a|s) exp(Q(s,a)/beta): the soft maximum of Q under the prior."""
    return _soft_v(jnp.asarray(Q), _check_beta(beta), _log(jnp.asarray(prior)))


@_x64
def kl_to_prior(pi: ArrayLike, prior: ArrayLike) -> np.ndarray:
    """Per-state KL(pi || prior) in nats."""
    return _kl(jnp.asarray(pi), jnp.asarray(prior))


def policy_entropy(pi: ArrayLike) -> np.ndarray:
    """Per-state entropy H(pi(.|s)) in nats, with 0 log 0 = 0 (cold policies have exact zeros)."""
    pi = np.asarray(pi, dtype=np.float64)
    logs = np.log(np.where(pi > 0, pi, 1.0))
    return -np.sum(pi * logs, axis=-1)


@_x64
def soft_bellman_operator(
    mdp: TabularMDP, Q: ArrayLike, beta: float, prior: ArrayLike | None = None
) -> np.ndarray:
    """(T Q)(s,a) = r(s,a) + gamma sum_s' P(s'|s,a) V_Q(s'), with V_Q the soft value of Q."""
    _check_mdp(mdp)
    prior = _prior_or_uniform(mdp, prior)
    Q = jnp.asarray(Q)
    _check_shape("Q", Q, (mdp.n_states, mdp.n_actions))
    V = _soft_v(Q, _check_beta(beta), _log(jnp.asarray(prior)))
    return _backup(jnp.asarray(mdp.P), jnp.asarray(mdp.r), mdp.gamma, V)


@_x64
def policy_evaluation(
    mdp: TabularMDP, pi: ArrayLike, beta: float = 0.0, prior: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact KL-regularised evaluation of a fixed policy: returns (Q^pi, V^pi); beta = 0: plain evaluation."""
    _check_mdp(mdp)
    pi = validate_policy("pi", pi, mdp.n_states, mdp.n_actions)
    prior = _prior_or_uniform(mdp, prior)
    if beta < 0:
        raise ValueError(f"beta: expected >= 0, got {beta}")
    return _evaluate(
        jnp.asarray(mdp.P), jnp.asarray(mdp.r), mdp.gamma, jnp.asarray(pi), float(beta), jnp.asarray(prior)
    )


# ------------------------------------------------------------------------------------------------ solvers
@functools.partial(jax.jit, static_argnames=("iters",))
def _svi(P, r, gamma, log_prior, beta, Q0, iters):
    """Soft value iteration: `iters` applications of the soft Bellman operator of eq-soft-bellman,
    Q <- r + gamma P V_Q with V_Q the soft value of eq-soft-value; also returns each sweep's sup-norm
    change."""

    def step(Q, _):
        Q_new = _backup(P, r, gamma, _soft_v(Q, beta, log_prior))
        return Q_new, jnp.max(jnp.abs(Q_new - Q))

    Q, residuals = jax.lax.scan(step, Q0, None, length=iters)
    return Q, residuals


@_x64
def soft_value_iteration_trace(
    mdp: TabularMDP,
    beta: float,
    prior: ArrayLike | None = None,
    *,
    iters: int = 1000,
    q_init: ArrayLike | None = None,
) -> tuple[SoftSolution, np.ndarray]:
    """Soft value iteration Q <- T Q; also returns the sup-norm change per iteration (the convergence curve).

    T is a gamma-contraction, so the change shrinks at least geometrically; 1000 iterations at gamma 0.95 reach
    float64 precision on the gridworld.
    """
    _check_mdp(mdp)
    beta = _check_beta(beta)
    log_prior = _log(jnp.asarray(_prior_or_uniform(mdp, prior)))
    Q0 = jnp.zeros(mdp.r.shape) if q_init is None else jnp.asarray(q_init, dtype=jnp.float64)
    _check_shape("q_init", Q0, mdp.r.shape)
    Q, residuals = _svi(jnp.asarray(mdp.P), jnp.asarray(mdp.r), mdp.gamma, log_prior, beta, Q0, int(iters))
    return SoftSolution(_boltzmann(Q, beta, log_prior), Q, _soft_v(Q, beta, log_prior)), residuals


def soft_value_iteration(
    mdp: TabularMDP,
    beta: float,
    prior: ArrayLike | None = None,
    *,
    iters: int = 1000,
    q_init: ArrayLike | None = None,
) -> SoftSolution:
    """Soft value iteration with a KL prior and temperature beta; returns (pi, Q, V)."""
    return soft_value_iteration_trace(mdp, beta, prior, iters=iters, q_init=q_init)[0]


@functools.partial(jax.jit, static_argnames=("iters",))
def _spi(P, r, gamma, prior, beta, pi0, iters):
    """Soft policy iteration: evaluate pi_k exactly (eq-soft-eval), improve pi_{k+1} = p exp((Q - V) / beta)
    (eq-boltzmann); returns the last policy, its predecessor's (Q, V) and max |pi_{k+1} - pi_k| per step."""
    log_prior = _log(prior)

    def step(pi, _):
        Q, V = _evaluate(P, r, gamma, pi, beta, prior)
        pi_new = _boltzmann(Q, beta, log_prior)
        return pi_new, (jnp.max(jnp.abs(pi_new - pi)), Q, V)

    pi, (changes, Qs, Vs) = jax.lax.scan(step, pi0, None, length=iters)
    return pi, Qs[-1], Vs[-1], changes


@_x64
def soft_policy_iteration_trace(
    mdp: TabularMDP,
    beta: float,
    prior: ArrayLike | None = None,
    *,
    iters: int = 50,
    pi_init: ArrayLike | None = None,
) -> tuple[SoftSolution, np.ndarray]:
    """Soft policy iteration: exact evaluation of pi_k, then pi_{k+1} = prior * exp(Q^{pi_k} / beta) / Z.

    Returns the final (pi, Q^{pi_{k-1}}, V^{pi_{k-1}}) and max |pi_{k+1} - pi_k| per iteration. With
    `iters=1` this is exactly one evaluation + improvement step from `pi_init` (default: the prior).
    """
    _check_mdp(mdp)
    beta = _check_beta(beta)
    if iters < 1:
        raise ValueError(f"iters: expected >= 1, got {iters}")
    prior = _prior_or_uniform(mdp, prior)
    pi0 = prior if pi_init is None else validate_policy("pi_init", pi_init, mdp.n_states, mdp.n_actions)
    pi, Q, V, changes = _spi(
        jnp.asarray(mdp.P), jnp.asarray(mdp.r), mdp.gamma, jnp.asarray(prior), beta, jnp.asarray(pi0),
        int(iters),
    )
    return SoftSolution(pi, Q, V), changes


def soft_policy_iteration(
    mdp: TabularMDP,
    beta: float,
    prior: ArrayLike | None = None,
    *,
    iters: int = 50,
    pi_init: ArrayLike | None = None,
) -> SoftSolution:
    """Soft policy iteration with a KL prior; returns (pi, Q, V) after `iters` evaluate-improve steps."""
    return soft_policy_iteration_trace(mdp, beta, prior, iters=iters, pi_init=pi_init)[0]


@functools.partial(jax.jit, static_argnames=("iters",))
def _vi(P, r, gamma, iters):
    def step(Q, _):
        return _backup(P, r, gamma, jnp.max(Q, axis=1)), None

    return jax.lax.scan(step, jnp.zeros_like(r), None, length=iters)[0]


@_x64
def value_iteration(mdp: TabularMDP, *, iters: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Hard (beta = 0) value iteration: returns (Q*, V*), the limit soft solutions approach as beta -> 0."""
    _check_mdp(mdp)
    Q = _vi(jnp.asarray(mdp.P), jnp.asarray(mdp.r), mdp.gamma, int(iters))
    return Q, jnp.max(Q, axis=1)


def greedy_policy(Q_or_pi: ArrayLike) -> np.ndarray:
    """One-hot argmax policy (ties go to the first action, as in the reference)."""
    x = np.asarray(Q_or_pi)
    if x.ndim != 2:
        raise ValueError(f"Q_or_pi: expected shape (S, A), got {x.shape}")
    out = np.zeros_like(x, dtype=np.float64)
    out[np.arange(x.shape[0]), np.argmax(x, axis=1)] = 1.0
    return out


# -------------------------------------------------------------------------------------------- occupancies
@_x64
def occupancy(mdp: TabularMDP, pi: ArrayLike) -> np.ndarray:
    """Normalised discounted state occupancy of eq-occupancy, rho = (1 - gamma) mu0^T (I - gamma P_pi)^{-1},
    one linear solve; sums to 1."""
    _check_mdp(mdp)
    pi = jnp.asarray(validate_policy("pi", pi, mdp.n_states, mdp.n_actions))
    P_pi = jnp.einsum("sa,sat->st", pi, jnp.asarray(mdp.P))
    A = jnp.eye(mdp.n_states) - mdp.gamma * P_pi
    return jnp.linalg.solve(A.T, (1.0 - mdp.gamma) * jnp.asarray(mdp.mu0))


def state_action_occupancy(mdp: TabularMDP, pi: ArrayLike) -> np.ndarray:
    """rho(s) pi(a|s), the quantity max-ent IRL matches to the demonstrations."""
    return occupancy(mdp, pi)[:, None] * np.asarray(pi, dtype=np.float64)


def expected_return(mdp: TabularMDP, pi: ArrayLike) -> float:
    """Normalised return sum_{s,a} rho(s) pi(a|s) r(s,a) = (1 - gamma) E[sum_t gamma^t r_t] (reference's metric)."""
    return float(np.sum(state_action_occupancy(mdp, pi) * np.asarray(mdp.r)))


# --------------------------------------------------------------------------------- experts and imitation
def soft_expert(mdp: TabularMDP, beta: float = 0.1, *, iters: int = 1000) -> SoftSolution:
    """The reference expert: soft-optimal for the true reward at temperature 0.1 under a uniform prior."""
    return soft_value_iteration(mdp, beta, None, iters=iters)


def collect_demos(
    mdp: TabularMDP,
    pi: ArrayLike,
    *,
    n_episodes: int = 100,
    absorbing: Sequence[int] = (GOAL,),
    greedy: bool = True,
    seed: int = 0,
    max_episode_steps: int = 1000,
    record_absorbing: bool = True,
) -> np.ndarray:
    """Roll out `pi` (its argmax if `greedy`) and return state-action visit counts [S, A].

    As in the reference, the step taken in an absorbing state is recorded and then the episode ends
    (`record_absorbing=False` leaves it out: on a success-absorbing grid nothing is demonstrated after
    success). Episodes that do not reach an absorbing state within `max_episode_steps` raise rather than
    being truncated silently.
    """
    _check_mdp(mdp)
    pi = validate_policy("pi", pi, mdp.n_states, mdp.n_actions)
    if n_episodes < 0:
        raise ValueError(f"n_episodes: expected >= 0, got {n_episodes}")
    rng = np.random.default_rng(seed)
    S, A = pi.shape
    absorbing_set = set(int(s) for s in absorbing)
    counts = np.zeros((S, A), dtype=np.int64)
    for episode in range(n_episodes):
        s = int(rng.choice(S, p=mdp.mu0))
        for _ in range(max_episode_steps):
            if s in absorbing_set:
                if record_absorbing:
                    counts[s, int(np.argmax(pi[s])) if greedy else int(rng.choice(A, p=pi[s]))] += 1
                break
            a = int(np.argmax(pi[s])) if greedy else int(rng.choice(A, p=pi[s]))
            counts[s, a] += 1
            s = int(rng.choice(S, p=mdp.P[s, a]))
        else:
            raise RuntimeError(
                f"collect_demos: episode {episode} did not reach an absorbing state {sorted(absorbing_set)} "
                f"within max_episode_steps={max_episode_steps}"
            )
    return counts


def bc_policy(counts: ArrayLike, prior: ArrayLike | None = None, *, eps: float = BC_EPS) -> np.ndarray:
    """Tabular BC as in the reference, eq-bc: counts act as logits on top of log prior, softmax, then an eps
    floor.

    Unvisited states get the prior back (the tabular version of HetStat's reversion out of distribution).
    Unlike the reference, the eps floor is renormalised so each row is an exact distribution.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"counts: expected shape (S, A), got {counts.shape}")
    if np.any(counts < 0):
        raise ValueError("counts: expected non-negative visit counts")
    prior = uniform_prior(*counts.shape) if prior is None else validate_policy("prior", prior, *counts.shape)
    logits = counts + np.log(prior)
    logits = logits - logits.max(axis=1, keepdims=True)
    pi = np.exp(logits)
    pi /= pi.sum(axis=1, keepdims=True)
    return (pi + eps) / (1.0 + eps * pi.shape[1])


def coherent_reward(pi_bc: ArrayLike, prior: ArrayLike | None = None, alpha: float = 1.0) -> np.ndarray:
    """eq-coherent-reward: r(s,a) = alpha (log pi_BC(a|s) - log prior(a|s)), the reward for which pi_BC is
    already soft-optimal."""
    pi_bc = np.asarray(pi_bc, dtype=np.float64)
    if pi_bc.ndim != 2:
        raise ValueError(f"pi_bc: expected shape (S, A), got {pi_bc.shape}")
    pi_bc = validate_policy("pi_bc", pi_bc, *pi_bc.shape)
    if np.any(pi_bc <= 0):
        raise ValueError("pi_bc: the coherent reward needs strictly positive probabilities (use an eps floor)")
    prior = uniform_prior(*pi_bc.shape) if prior is None else validate_policy("prior", prior, *pi_bc.shape)
    return alpha * (np.log(pi_bc) - np.log(prior))


def classifier_reward(counts: ArrayLike) -> np.ndarray:
    """Ideal classifier / ORIL / SQIL-style reward: 1 on demonstrated (s, a) pairs, 0 elsewhere."""
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts: expected shape (S, A), got {counts.shape}")
    return (counts > 0).astype(np.float64)


@functools.partial(jax.jit, static_argnames=("iters", "inner_iters"))
def _meirl(P, mu0, gamma, log_prior, beta, target, lr, iters, inner_iters):
    S = P.shape[0]

    def occ(pi):
        P_pi = jnp.einsum("sa,sat->st", pi, P)
        rho = jnp.linalg.solve((jnp.eye(S) - gamma * P_pi).T, (1.0 - gamma) * mu0)
        return rho[:, None] * pi

    def outer(r, _):
        Q, _ = _svi(P, r, gamma, log_prior, beta, jnp.zeros_like(r), inner_iters)
        error = target - occ(_boltzmann(Q, beta, log_prior))
        return r + lr * error, jnp.mean(error**2)

    return jax.lax.scan(outer, jnp.zeros_like(target), None, length=iters)


@_x64
def maxent_irl(
    mdp: TabularMDP,
    counts: ArrayLike,
    *,
    beta: float = 1.0,
    prior: ArrayLike | None = None,
    iters: int = 500,
    inner_iters: int = 100,
    lr: float = 1.0,
) -> tuple[SoftSolution, np.ndarray, np.ndarray]:
    """Max-ent IRL with indicator features (the reference's settings): gradient ascent on the reward
    r += lr (rho_E - rho_pi), each step re-solving soft VI (`inner_iters` backups from zero).

    Returns (solution for the final reward, reward, feature-matching error per iteration). Unlike the reference,
    it always runs `iters` steps (no early stop), so the result does not depend on a stopping threshold.
    """
    _check_mdp(mdp)
    beta = _check_beta(beta)
    counts = np.asarray(counts, dtype=np.float64)
    _check_shape("counts", counts, mdp.r.shape)
    if counts.sum() <= 0:
        raise ValueError("counts: no demonstrated state-action pairs")
    log_prior = _log(jnp.asarray(_prior_or_uniform(mdp, prior)))
    P, mu0 = jnp.asarray(mdp.P), jnp.asarray(mdp.mu0)
    target = jnp.asarray(counts / counts.sum())
    reward, errors = _meirl(
        P, mu0, mdp.gamma, log_prior, beta, target, float(lr), int(iters), int(inner_iters)
    )
    Q, _ = _svi(P, reward, mdp.gamma, log_prior, beta, jnp.zeros_like(reward), int(inner_iters))
    sol = SoftSolution(_boltzmann(Q, beta, log_prior), Q, _soft_v(Q, beta, log_prior))
    return sol, reward, errors


def csil_policy(
    mdp: TabularMDP,
    pi_bc: ArrayLike,
    *,
    alpha: float = 1.0,
    beta: float = 1e-3,
    prior: ArrayLike | None = None,
    iters: int = 50,
) -> tuple[SoftSolution, np.ndarray]:
    """Tabular CSIL: soft policy iteration on the coherent reward, started at pi_BC. Returns (solution, reward).

    The reward has scale `alpha` and the SPI step regularises towards the prior at temperature `beta`. With
    `beta == alpha` pi_BC is already the fixed point (chapter 2, proposition after eq-coherent-reward);
    the reference uses alpha = 1 and a much colder SPI temperature (beta = 1e-3), so the policy sharpens
    towards the demonstrated actions and, where the BC policy is uniform, learns to steer back to the
    demonstrated states.
    """
    prior = _prior_or_uniform(mdp, prior)
    reward = coherent_reward(pi_bc, prior, alpha)
    sol = soft_policy_iteration(mdp._replace(r=reward), beta, prior, iters=iters, pi_init=pi_bc)
    return sol, reward


def classifier_irl_policy(
    mdp: TabularMDP, counts: ArrayLike, pi_init: ArrayLike, *, beta: float = 0.01, iters: int = 50
) -> tuple[SoftSolution, np.ndarray]:
    """Classifier-reward IRL (reference settings: beta 0.01, started at BC). Returns (solution, reward)."""
    reward = classifier_reward(counts)
    return soft_policy_iteration(mdp._replace(r=reward), beta, None, iters=iters, pi_init=pi_init), reward


# ------------------------------------------------------------------- the online objective and reward shifts
def absorbing_states(mdp: TabularMDP) -> np.ndarray:
    """Mask of the states every action keeps in place (an ended episode, e.g. a success-absorbing goal)."""
    _check_mdp(mdp)
    P = np.asarray(mdp.P)
    return np.all(P[np.arange(mdp.n_states), :, np.arange(mdp.n_states)] == 1.0, axis=1)


def _reference(name: str, reference: str | ArrayLike, pi_bc: np.ndarray, prior: np.ndarray) -> np.ndarray:
    if isinstance(reference, str):
        if reference == "bc":
            return pi_bc
        if reference == "prior":
            return prior
        raise ValueError(f"{name}: expected 'bc', 'prior' or a policy table, got {reference!r}")
    return validate_policy(name, reference, *pi_bc.shape)


def shifted_coherent_reward(
    pi_bc: ArrayLike,
    prior: ArrayLike | None = None,
    alpha: float = 1.0,
    shift: float = 0.0,
    absorbing: ArrayLike | None = None,
) -> np.ndarray:
    """Chapter 2, eq-shifted-reward: alpha (log q - log p) - shift, and 0 in absorbing states.

    Once an episode has ended (an absorbing state) nothing is paid, neither the log-ratio nor the shift;
    this is what makes a constant shift matter when episodes end on success.
    """
    r = coherent_reward(pi_bc, prior, alpha) - float(shift)
    if absorbing is not None:
        absorbing = np.asarray(absorbing, dtype=bool)
        _check_shape("absorbing", absorbing, (r.shape[0],))
        r[absorbing] = 0.0
    return r


def coherent_reward_bound(prior: ArrayLike, alpha: float = 1.0) -> float:
    """Chapter 2, eq-reward-bound: alpha max_{s,a} (-log p(a|s)), an upper bound on the coherent
    reward of *any* policy (q <= 1), reached only where q puts all its mass on one action; chapter 5's
    'bound' shift."""
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 2 or np.any(prior <= 0):
        raise ValueError(f"prior: expected a strictly positive (S, A) table, got shape {prior.shape}")
    return float(alpha * np.max(-np.log(prior)))


def demo_reward_max(
    pi_bc: ArrayLike, counts: ArrayLike, prior: ArrayLike | None = None, alpha: float = 1.0
) -> float:
    """The largest coherent reward of the BC policy on the demonstrated pairs (counts > 0): 'demos' shift."""
    r = coherent_reward(pi_bc, prior, alpha)
    counts = np.asarray(counts)
    _check_shape("counts", counts, r.shape)
    if not np.any(counts > 0):
        raise ValueError("counts: no demonstrated state-action pairs")
    return float(r[counts > 0].max())


def online_value(
    mdp: TabularMDP,
    pi_bc: ArrayLike,
    *,
    alpha: float,
    beta: float,
    reference: str | ArrayLike = "bc",
    prior: ArrayLike | None = None,
    shift: float = 0.0,
) -> np.ndarray:
    """Chapter 2, eq-online-value: the exact value of q under the shifted coherent reward with a KL to
    the reference at temperature beta,
    V^q = (I - gamma P_q)^{-1} [m (alpha KL(q||p) - shift) - beta KL(q||ref)],
    m = 1 outside absorbing states. Written out in numpy, independently of the soft policy iteration code."""
    _check_mdp(mdp)
    q = np.asarray(pi_bc, dtype=np.float64)
    q = validate_policy("pi_bc", q, mdp.n_states, mdp.n_actions)
    p = _prior_or_uniform(mdp, prior)
    ref = _reference("reference", reference, q, p)
    beta = _check_beta(beta)
    m = ~absorbing_states(mdp)
    kl_qp = np.sum(q * (np.log(q) - np.log(p)), axis=1)
    kl_qref = np.sum(q * (np.log(q) - np.log(ref)), axis=1)
    r_q = m * (alpha * kl_qp - float(shift)) - beta * kl_qref
    P_q = np.einsum("sa,sat->st", q, np.asarray(mdp.P))
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_q, r_q)


def online_improvement(
    mdp: TabularMDP,
    pi_bc: ArrayLike,
    *,
    alpha: float,
    beta: float,
    reference: str | ArrayLike = "bc",
    prior: ArrayLike | None = None,
    shift: float = 0.0,
) -> np.ndarray:
    """Chapter 2, eq-online-step: one soft policy improvement step from q on the shifted coherent
    reward, regularised towards `reference` ('bc' = q, CSIL's online objective; 'prior' = p) at temperature
    beta:

        pi(a|s) propto ref(a|s) (q(a|s)/p(a|s))^{m alpha/beta} exp((gamma E_{s'}[V^q(s')] - m shift)/beta)

    with V^q from `online_value`. For ref = q this is q^{1 + alpha/beta} p^{-alpha/beta} exp(...): a
    sharpened q.
    It leaves q in place when ref = p, beta = alpha and gamma P V^q - m shift is constant across actions (no
    absorbing state, or shift = 0).
    """
    q = validate_policy("pi_bc", pi_bc, mdp.n_states, mdp.n_actions)
    p = _prior_or_uniform(mdp, prior)
    ref = _reference("reference", reference, q, p)
    V = online_value(mdp, q, alpha=alpha, beta=beta, reference=ref, prior=p, shift=shift)
    m = (~absorbing_states(mdp)).astype(np.float64)[:, None]
    logits = (np.log(ref) + m * (alpha / beta) * (np.log(q) - np.log(p))
              + (mdp.gamma * np.asarray(mdp.P) @ V - m * float(shift)) / beta)
    logits -= logits.max(axis=1, keepdims=True)
    pi = np.exp(logits)
    return pi / pi.sum(axis=1, keepdims=True)


def total_variation(pi: ArrayLike, q: ArrayLike) -> np.ndarray:
    """Per-state total-variation distance 0.5 sum_a |pi(a|s) - q(a|s)| (0: identical, 1: disjoint)."""
    return 0.5 * np.abs(np.asarray(pi, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum(axis=-1)


def expected_visits(mdp: TabularMDP, pi: ArrayLike) -> np.ndarray:
    """Expected number of (undiscounted) visits to each state before an absorbing state is reached, from mu0.

    Absorbing states get 0; the sum is the expected number of steps to absorption. Raises if the MDP has no
    absorbing state or `pi` does not reach one with probability 1.
    """
    _check_mdp(mdp)
    pi = validate_policy("pi", pi, mdp.n_states, mdp.n_actions)
    absorbing = absorbing_states(mdp)
    if not absorbing.any():
        raise ValueError("mdp: no absorbing state, so the number of steps to absorption is undefined")
    t = ~absorbing
    P_pi = np.einsum("sa,sat->st", pi, np.asarray(mdp.P))[np.ix_(t, t)]
    visits = np.zeros(mdp.n_states)
    with np.errstate(all="ignore"):
        try:
            visits[t] = np.linalg.solve((np.eye(int(t.sum())) - P_pi).T, np.asarray(mdp.mu0)[t])
        except np.linalg.LinAlgError:
            visits[:] = np.nan
    if not np.all(np.isfinite(visits)) or np.any(visits < -1e-9) or np.sum(visits) > 1e12:
        raise ValueError("pi: does not reach an absorbing state with probability 1 (expected visits diverge)")
    return np.maximum(visits, 0.0)


class ShiftBias(NamedTuple):
    """What a constant reward shift does to the optimum (see `minimum_time_bias`)."""

    shift: float
    pi: np.ndarray  # soft-optimal policy of the shifted coherent reward
    max_tv: float  # max over demonstrated states of TV(pi, q)
    visits: np.ndarray  # expected visits per state before success under pi (sum: expected steps)
    visits_bc: np.ndarray  # the same under q


def minimum_time_bias(
    mdp: TabularMDP,
    pi_bc: ArrayLike,
    counts: ArrayLike,
    *,
    shift: float,
    alpha: float = 1.0,
    beta: float | None = None,
    reference: str | ArrayLike = "prior",
    prior: ArrayLike | None = None,
    iters: int = 2000,
) -> ShiftBias:
    """Chapter 2, eq-shift-absorbing: solve the KL-regularised problem on the shifted coherent reward
    exactly (soft value iteration, temperature beta, default alpha; KL to `reference`) and measure how far its
    optimum is from q: the largest total-variation distance on the demonstrated states and the expected visits
    before success. With reference 'prior', beta = alpha and shift = 0 the optimum is q itself, so any
    distance is the shift's doing; on an MDP without absorbing states the shift changes nothing.
    """
    q = validate_policy("pi_bc", pi_bc, mdp.n_states, mdp.n_actions)
    p = _prior_or_uniform(mdp, prior)
    ref = _reference("reference", reference, q, p)
    counts = np.asarray(counts)
    _check_shape("counts", counts, q.shape)
    beta = alpha if beta is None else beta
    r = shifted_coherent_reward(q, p, alpha, shift, absorbing_states(mdp))
    sol = soft_value_iteration(mdp._replace(r=r), beta, ref, iters=iters)
    seen = counts.sum(axis=1) > 0
    max_tv = float(total_variation(sol.pi, q)[seen].max()) if seen.any() else 0.0
    return ShiftBias(float(shift), sol.pi, max_tv, expected_visits(mdp, sol.pi), expected_visits(mdp, q))


class Benchmark(NamedTuple):
    """Policies of each method (trained on the nominal grid) and their (nominal, windy) returns."""

    policies: dict[str, np.ndarray]
    returns: dict[str, tuple[float, float]]
    counts: np.ndarray
    rewards: dict[str, np.ndarray]


def gridworld_benchmark(
    *,
    wind: float = 0.5,
    n_episodes: int = 100,
    seed: int = 0,
    expert_beta: float = 0.1,
    csil_beta: float = 1e-3,
    csil_alpha: float = 1.0,
    meirl: bool = True,
    meirl_iters: int = 500,
    greedy_demos: bool = True,
) -> Benchmark:
    """The reference's comparison: expert, BC, classifier IRL, ME-IRL and CSIL, evaluated without and with wind.

    All learners see only the demonstration counts and the nominal dynamics (known-dynamics IRL); the windy grid
    is used for evaluation only.
    """
    nominal, windy = gridworld(0.0), gridworld(wind)
    expert = soft_expert(nominal, expert_beta)
    counts = collect_demos(nominal, expert.pi, n_episodes=n_episodes, greedy=greedy_demos, seed=seed)
    pi_bc = bc_policy(counts)
    csil, r_csil = csil_policy(nominal, pi_bc, alpha=csil_alpha, beta=csil_beta)
    clf, r_clf = classifier_irl_policy(nominal, counts, pi_bc)
    policies = {
        "greedy expert": greedy_policy(expert.pi),
        "soft expert": expert.pi,
        "BC": pi_bc,
        "classifier IRL": clf.pi,
    }
    rewards = {"true": nominal.r, "CSIL": r_csil, "classifier IRL": r_clf}
    if meirl:
        me, r_me, _ = maxent_irl(nominal, counts, iters=meirl_iters)
        policies["ME-IRL"] = me.pi
        rewards["ME-IRL"] = r_me
    policies["CSIL"] = csil.pi
    returns = {k: (expected_return(nominal, p), expected_return(windy, p)) for k, p in policies.items()}
    return Benchmark(policies, returns, counts, rewards)


# ---------------------------------------------------------------------------------------------- plotting
def plot_grid(
    values: ArrayLike,
    ax: Any = None,
    *,
    title: str | None = None,
    policy: ArrayLike | None = None,
    marks: dict[int, str] | None = None,
    cmap: str = "viridis",
    colorbar: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    arrow_color: str = "white",
) -> Any:
    """Heatmap of a per-state quantity on the square grid (y up), optional mean-move arrows and G/T/S marks."""
    import matplotlib.pyplot as plt

    v = np.asarray(values, dtype=np.float64)
    n = int(round(np.sqrt(v.size)))
    if v.ndim not in (1, 2) or n * n != v.size:
        raise ValueError(f"values: expected S = width^2 entries (shape (S,) or (w, w)), got shape {v.shape}")
    grid = v.reshape(n, n)  # row = y, column = x
    if ax is None:
        ax = plt.gca()
    im = ax.imshow(grid, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if policy is not None:
        pi = np.asarray(policy, dtype=np.float64)
        _check_shape("policy", pi, (n * n, len(ACTION_DELTAS)))
        d = np.asarray(ACTION_DELTAS, dtype=np.float64)
        move = pi @ d  # expected displacement per state
        ys, xs = np.divmod(np.arange(n * n), n)
        ax.quiver(xs, ys, move[:, 0], move[:, 1], color=arrow_color, angles="xy", scale_units="xy", scale=1.6,
                  width=0.006)
    if marks is None:
        marks = {GOAL: "G", TRAP: "T", START: "S"} if n == WIDTH else {}
    for s, label in marks.items():
        y, x = divmod(int(s), n)
        ax.text(x, y, label, ha="center", va="center", color="red", fontsize=9, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return im
