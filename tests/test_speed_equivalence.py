"""The fast update (shared passes, latents of the fixed networks computed once per update) gives the numbers
of the straightforward one: every network applied where an equation needs it, written out here from the
library's primitives (reward and refinement, KL estimators, critic pass and heads, the losses)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.agents.core import init_state, make_update
from csil_lite.assembly import agent_of
from csil_lite.losses import action_grad_penalty, actor_loss, critic_loss
from csil_lite.coherent import policy_reward, refinement_log_ratio, refinement_loss
from csil_lite.config import AgentConfig
from csil_lite.data.transitions import Transitions
from csil_lite.distributions import latent_kl, tanh_normal
from csil_lite.nets import HetStatPolicy
from csil_lite.assembly import make_critic

OBS, ACT, N_DEMO, N_ONLINE = 5, 3, 6, 6


def _naive_kl(agent, mean, std, actions, prior_params, obs):
    cfg = agent.config
    if cfg.kl == "exact":
        return latent_kl(mean, std, *agent.policy.apply(prior_params, obs))
    log_pi = tanh_normal(mean, std).log_prob(actions)
    if cfg.prior == "uniform":
        return log_pi + ACT * np.log(2.0)
    return log_pi - tanh_normal(*agent.policy.apply(prior_params, obs)).log_prob(actions)


def _naive_reward(agent, params, batch):
    cfg = agent.config
    if cfg.reward == "coherent":
        return policy_reward(agent.policy, params, batch.obs, batch.action, variant=cfg.reward_variant,
                             scale=cfg.reward_scale, shift=cfg.numeric_shift, density=cfg.reward_density)
    return batch.reward


def _naive_update(agent, state, batch, key):
    """The update as the equations read: each network evaluated at each place it appears."""
    cfg = agent.config
    utd = batch.obs.shape[0]
    keys = jax.random.split(key, utd + 1)
    metrics = []
    for i in range(utd):
        b = jax.tree.map(lambda x: x[i], batch)

        def critic_obj(p, s=state, b=b, k=keys[i + 1]):
            r = jax.lax.stop_gradient(_naive_reward(agent, s.reward.variables, b))
            mean, std = agent.policy.apply(s.actor.variables, b.next_obs)
            next_a = tanh_normal(mean, std).sample(seed=k)
            next_kl = _naive_kl(agent, mean, std, next_a, s.prior, b.next_obs)
            out, next_out, stats = agent.critic.forward(p, s.critic, b.obs, b.action, b.next_obs, next_a)
            target = agent.critic.head.bellman_target(r, b.terminal, next_out, next_kl, gamma=cfg.gamma,
                                               beta=cfg.beta, ceiling=agent.reward.value_ceiling(cfg.gamma))
            bellman = critic_loss(agent.critic.head, out, target)
            variables = {"params": p, "batch_stats": s.critic.batch_stats}
            value = lambda o, a: agent.critic.head.value(agent.critic.module.apply(variables, o, a))  # noqa: E731
            demo = slice(0, cfg.n_demo)
            if agent.critic.size == 1:
                pen = action_grad_penalty(value, b.obs[demo], b.action[demo])
            else:
                pen = sum(action_grad_penalty(lambda o, a, e=e: value(o, a)[e], b.obs[demo], b.action[demo])
                          for e in range(agent.critic.size))
            return bellman + cfg.grad_penalty * pen, ({"critic_loss": bellman, "grad_penalty": pen,
                                                       "reward": jnp.mean(r)}, stats)

        (_, (m, stats)), g = jax.value_and_grad(critic_obj, has_aux=True)(state.critic.params)
        critic = state.critic.apply_gradients(g, batch_stats=stats)
        critic = critic.replace(params=agent.critic.project(critic.params)).update_target(cfg.tau)
        reward = state.reward
        if cfg.reward == "coherent" and cfg.refine_reward:
            def refine_obj(p, b=b, bs=state.reward.batch_stats):
                x = refinement_log_ratio(agent.policy, {"params": p, "batch_stats": bs}, b.obs, b.action,
                                         density=cfg.reward_density)
                return refinement_loss(x[: cfg.n_demo], x[cfg.n_demo:], cfg.refine_kl_weight)

            loss, g = jax.value_and_grad(refine_obj)(reward.params)
            reward = reward.apply_gradients(g)
            m["reward_loss"] = loss
        state = state._replace(critic=critic, reward=reward)
        metrics.append(m)
    last = jax.tree.map(lambda x: x[-1], batch)

    def actor_obj(p):
        mean, std = agent.policy.apply({"params": p, "batch_stats": state.actor.batch_stats}, last.obs)
        a = tanh_normal(mean, std).sample(seed=keys[0])
        kl = _naive_kl(agent, mean, std, a, state.prior, last.obs)
        q = agent.critic.head.value(agent.critic.module.apply(state.critic.variables, last.obs, a))
        q = jnp.min(q, axis=0) if agent.critic.size > 1 else q
        loss = actor_loss(q, kl, cfg.beta)
        return loss, {"actor_loss": loss, "kl": jnp.mean(kl)}

    (_, am), g = jax.value_and_grad(actor_obj, has_aux=True)(state.actor.params)
    state = state._replace(actor=state.actor.apply_gradients(g), step=state.step + 1)
    out = {k: jnp.mean(jnp.stack([m[k] for m in metrics])) for k in metrics[0]}
    return state, {**out, **am}


def _setup(critic_kind: str, **cfg):
    policy = HetStatPolicy(ACT, hidden=(32, 32), features=32, bottleneck=4)
    if critic_kind == "layer":
        critic = make_critic((32, 32))
    else:
        from csil_lite.nets.heads import quantile_support

        critic = make_critic((32, 32), "batch_weight", "categorical", 2,
                             atoms=quantile_support(np.linspace(-6, -0.5, 80), 21, v_min=-8.0))
    agent = agent_of(AgentConfig(n_demo=N_DEMO, n_online=N_ONLINE, beta=0.3, **cfg), policy, critic, ACT)
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    bc = policy.init(k[0], jnp.zeros((1, OBS)))
    # A BC policy whose head and trunk are not at their initial (zero-head, identity-factor) values.
    bc = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(k[1], x.shape), bc)
    state = init_state(agent, bc, critic.module.init(k[2], jnp.zeros((1, OBS)), jnp.zeros((1, ACT))))
    # Actor and reward network moved away from the prior, so each network's pass matters.
    move = lambda t, kk: t.replace(params=jax.tree.map(  # noqa: E731
        lambda x: x + 0.05 * jax.random.normal(kk, x.shape), t.params))
    state = state._replace(actor=move(state.actor, k[3]),
                           reward=move(state.reward, jax.random.fold_in(k[3], 1)))
    return agent, state


def _batch(utd: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    n = N_DEMO + N_ONLINE
    f = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)  # noqa: E731
    terminal = (rng.uniform(size=(utd, n)) < 0.2).astype(np.float32)
    return jax.tree.map(jnp.asarray, Transitions(
        obs=f(utd, n, OBS), action=f(utd, n, ACT) * 0.95, reward=f(utd, n) - 1.0, next_obs=f(utd, n, OBS),
        next_action=f(utd, n, ACT), terminal=terminal, last=terminal))


CASES = {
    "csil": ("layer", dict()),
    "csil-latent-pos-utd2": ("layer", dict(reward_variant="pos", reward_density="latent", utd=2)),
    "csilpp": ("bn_wn_twin_categorical", dict(kl="exact", utd=4)),
    "sac_bc": ("layer", dict(prior="uniform", reward="env", refine_reward=False, utd=2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_update_matches_the_straightforward_composition(name):
    kind, cfg = CASES[name]
    agent, state = _setup(kind, **cfg)
    update = make_update(agent)
    naive = jax.jit(lambda s, b, k: _naive_update(agent, s, b, k))
    fast_state, ref_state = state, state
    for i in range(3):
        batch, key = _batch(agent.config.utd, seed=i), jax.random.PRNGKey(10 + i)
        fast_state, fast_m = update(fast_state, batch, key)
        ref_state, ref_m = naive(ref_state, batch, key)
        for k, v in ref_m.items():
            np.testing.assert_allclose(float(fast_m[k]), float(v), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {k} @{i}")
    assert float(ref_m["kl"]) > 1e-3 and float(ref_m["critic_loss"]) > 0  # nothing trivially zero
    # Params (and batch statistics, targets, optimiser states) after three updates.
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(fast_state), jax.tree.leaves(ref_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name} {jax.tree_util.keystr(path)}")
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), fast_state.actor.params,
                                         state.actor.params))
    assert max(moved) > 1e-4  # the updates did change the actor
