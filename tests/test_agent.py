import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.agents.core import init_state, make_update, sample_with_kl
from csil_lite.assembly import agent_of, make_critic
from csil_lite.config import AgentConfig, RunConfig
from csil_lite.configs import preset
from csil_lite.data.transitions import Transitions, episodes_to_transitions
from csil_lite.nets import HetStatPolicy
from csil_lite.nets.critic import LayerNormCritic, unit_fan_in
from csil_lite.nets.heads import ScalarHead
from csil_lite.pretrain.critic import pretrain_critic, sarsa_rows

OBS, ACT = 3, 2


def _agent(**cfg):
    policy = HetStatPolicy(ACT, hidden=(16,), features=16)
    critic = make_critic((16, 16))
    agent = agent_of(AgentConfig(n_demo=4, n_online=4, **cfg), policy, critic, ACT)
    key = jax.random.PRNGKey(0)
    pp = policy.init(key, jnp.zeros((1, OBS)))
    cp = critic.init(key, jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))
    return agent, init_state(agent, pp, cp)


def _batch(utd=1, n=8, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)  # noqa: E731
    return Transitions(obs=f(utd, n, OBS), action=f(utd, n, ACT) * 0.9, reward=f(utd, n), next_obs=f(utd, n, OBS),
                       next_action=f(utd, n, ACT), terminal=np.zeros((utd, n), np.float32),
                       last=np.zeros((utd, n), np.float32))


def test_kl_is_zero_when_policy_equals_bc_prior():
    agent, state = _agent()
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, OBS))
    _, kl = sample_with_kl(agent, state.actor.variables, state.prior, obs, jax.random.PRNGKey(2))
    np.testing.assert_allclose(np.asarray(kl), 0.0, atol=1e-6)
    # After the policy moves, the single-sample estimate averages to the exact (positive) KL.
    moved = jax.tree.map(lambda x: x + 0.3 * jnp.sign(x + 1e-3), state.actor.variables)
    _, kl = sample_with_kl(agent, moved, state.prior, jnp.repeat(obs[:1], 20_000, 0), jax.random.PRNGKey(3))
    assert float(jnp.mean(kl)) > 0.01


def test_sac_regulariser_is_the_uniform_prior():
    agent, state = _agent(prior="uniform", reward="env", refine_reward=False)
    obs = jnp.zeros((5, OBS))
    a, kl = sample_with_kl(agent, state.actor.variables, state.prior, obs, jax.random.PRNGKey(0))
    mean, std = agent.policy.apply(state.actor.variables, obs)
    from csil_lite.distributions import tanh_normal

    np.testing.assert_allclose(np.asarray(kl), np.asarray(tanh_normal(mean, std).log_prob(a) + ACT * np.log(2)), rtol=1e-5)


def test_sparse_reward_is_minus_one_until_the_absorbing_success():
    """reward='sparse': r = terminal - 1 from the transition's absorbing flag; the stored reward is ignored, and
    nothing is learned for it (the reward network is empty)."""
    from csil_lite.agents.components import SparseReward

    agent, state = _agent(prior="uniform", reward="sparse", refine_reward=False, gamma=0.9)
    assert isinstance(agent.reward, SparseReward) and not jax.tree.leaves(state.reward.params)
    batch = _batch(utd=2)
    term = np.zeros((2, 8), np.float32)
    term[:, ::3] = 1.0
    batch = batch._replace(terminal=term, last=term)
    r = np.asarray(agent.reward.of_batch(None, jax.tree.map(lambda x: x[0], batch)))
    np.testing.assert_array_equal(r, term[0] - 1.0)
    update = make_update(agent)
    s1, m1 = update(state, batch, jax.random.PRNGKey(5))
    s2, m2 = update(state, batch._replace(reward=-batch.reward + 7.0), jax.random.PRNGKey(5))
    np.testing.assert_allclose(float(m1["reward"]), float(np.mean(term - 1.0)), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):  # the stored reward plays no part
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert all(np.isfinite(float(v)) for v in m1.values())


def test_update_is_deterministic_and_moves_parameters():
    agent, state = _agent(utd=3)
    update = make_update(agent)
    batch = _batch(utd=3)
    s1, m1 = update(state, batch, jax.random.PRNGKey(5))
    s2, m2 = update(state, batch, jax.random.PRNGKey(5))
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(s1.step) == 1
    diff = lambda x, y: sum(float(jnp.abs(a - b).sum()) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))  # noqa
    assert diff(s1.critic.params, state.critic.params) > 0 and diff(s1.actor.params, state.actor.params) > 0
    assert diff(s1.critic.target_params, state.critic.target_params) > 0
    assert diff(s1.reward.params, state.reward.params) > 0  # refinement on
    assert diff(s1.prior, state.prior) == 0  # the KL reference stays frozen
    assert np.isfinite(float(m1["critic_loss"]))


def test_update_rejects_batch_without_utd_axis():
    agent, state = _agent()
    flat = jax.tree.map(lambda x: x[0], _batch())
    with pytest.raises(ValueError, match="leading UTD axis"):
        make_update(agent)(state, flat, jax.random.PRNGKey(0))


def test_bellman_target_is_clipped_by_the_value_bound():
    agent, state = _agent(reward_variant="neg")
    batch = jax.tree.map(lambda x: x[0], _batch())
    # A target critic that is hugely optimistic must not leak above the bound (0 for the shifted reward).
    big = jax.tree.map(lambda x: x, state.critic.target_params)
    big["MLP_0"]["Dense_2"]["bias"] = big["MLP_0"]["Dense_2"]["bias"] + 1e6
    from csil_lite.agents.core import critic_objective

    _, (m, _) = critic_objective(agent, state.critic.params, state._replace(critic=state.critic.replace(target_params=big)),
                            batch, jax.random.PRNGKey(0))
    assert float(m["target"]) <= 0.0


def _two_episodes(timeout_first: bool):
    ep = lambda a0, term: dict(  # noqa: E731
        obs=np.arange(3, dtype=np.float32)[:, None].repeat(OBS, 1),
        actions=np.full((3, ACT), a0, np.float32),
        next_obs=np.arange(1, 4, dtype=np.float32)[:, None].repeat(OBS, 1),
        terminal=term,
    )
    return episodes_to_transitions([ep(0.1, not timeout_first), ep(0.9, True)])


def test_sarsa_never_pairs_across_episodes():
    demos = _two_episodes(timeout_first=True)
    # next_action inside an episode is the next demo action; at an episode end it is never the next episode's.
    np.testing.assert_allclose(demos.next_action[:2], 0.1)
    assert not np.any(np.isclose(demos.next_action[2], 0.9))
    rows = sarsa_rows(demos)
    assert 2 not in rows  # time-out end of episode 0: no next action, excluded
    assert 5 in rows  # terminal end of episode 1: target needs no next action
    critic = LayerNormCritic(hidden=(8,))
    params = critic.init(jax.random.PRNGKey(0), demos.obs[:1], demos.action[:1])
    batch = jax.tree.map(jnp.asarray, demos)
    # The target at a terminal row does not depend on the next action at all.
    def target(na):
        return ScalarHead().sarsa_target(jnp.zeros(6), batch.terminal, critic.apply(params, batch.next_obs, na), 0.9)

    g = jax.grad(lambda na: target(na)[5])(batch.next_action)
    assert float(jnp.abs(g).sum()) == 0.0


def test_critic_pretraining_fits_demo_values():
    demos = _two_episodes(timeout_first=False)
    critic = make_critic((32, 32))
    params = critic.init(jax.random.PRNGKey(0), demos.obs[:1], demos.action[:1])
    r = np.ones(demos.size, np.float32)
    res = pretrain_critic(critic, params, demos, r, steps=1500, gamma=0.5, learning_rate=3e-3, tau=0.05,
                          batch_size=16, grad_penalty=0.0, progress=False)
    q = np.asarray(critic.value(res.params, demos.obs, demos.action))
    # Episodes are 3 steps long and end terminally: values 1 + 0.5 + 0.25, 1 + 0.5, 1.
    np.testing.assert_allclose(q[:3], [1.75, 1.5, 1.0], atol=0.1)


@pytest.mark.parametrize("norm", ["batch", "batch_weight"])
def test_batch_normalised_critic_pretraining_fits_demo_values_in_eval_mode(norm):
    """SARSA with the online update's joint train-mode pass: finite losses, running statistics moved (and carried
    in the result), and the eval-mode values (running statistics) fit the closed-form demo values."""
    demos = _two_episodes(timeout_first=False)
    critic = make_critic((32, 32), norm=norm)
    params = critic.init(jax.random.PRNGKey(0), demos.obs[:1], demos.action[:1])
    r = np.ones(demos.size, np.float32)
    res = pretrain_critic(critic, params, demos, r, steps=1500, gamma=0.5, learning_rate=3e-3, tau=0.05,
                          batch_size=16, grad_penalty=0.1, progress=False)
    assert np.all(np.isfinite(res.losses)) and res.losses[-100:].mean() < 0.1 * res.losses[:100].mean()
    before, after = jax.tree.leaves(params["batch_stats"]), jax.tree.leaves(res.params["batch_stats"])
    assert len(before) == len(after) > 0
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(before, after)) > 1e-2
    # Eval mode reads the running statistics and leaves them alone.
    q, upd = critic.module.apply(res.params, demos.obs, demos.action, False, mutable=["batch_stats"])
    for a, b in zip(jax.tree.leaves(upd["batch_stats"]), after):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(q)[:3], [1.75, 1.5, 1.0], atol=0.15)
    if critic.weight_norm:  # the projection was applied after every step
        k = res.params["params"]["Dense_0"]["kernel"]
        np.testing.assert_allclose(np.linalg.norm(np.asarray(k), axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(actor_lr=-1e-3), "actor_lr"),
        (dict(prior="ppo"), "prior"),
        (dict(reward="shaped"), "reward"),
        (dict(kl="analytic"), "kl"),
        (dict(kl="exact", prior="uniform"), "no closed form"),
        (dict(gamma=1.0), "gamma"),
        (dict(reward_variant="zero"), "reward_variant"),
        (dict(reward_density="log"), "reward_density"),
        (dict(n_demo=0), "demonstrations"),
        (dict(critic_weight_decay=-0.01), "critic_weight_decay"),
    ],
)
def test_bad_agent_config(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        AgentConfig(**kwargs)


def test_bad_run_config():
    with pytest.raises(ValueError, match="replay capacity"):
        preset("preview", replay_capacity=64)
    with pytest.raises(ValueError, match="unknown budget"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown algo"):
        preset("preview", algo="ppo")
    with pytest.raises(ValueError, match="bc_lr"):
        RunConfig(bc_lr=-1.0)
    with pytest.raises(ValueError, match="actor_warmup"):
        RunConfig(actor_warmup=-5)


def test_refinement_sees_the_log_ratio_whatever_the_critic_reward():
    """The KL estimator x - 1 + e^-x needs x = the log-ratio: neither the 'neg' shift nor the critic's reward scale
    may change the refinement loss (a shifted x ~ -12 put every online sample in the linear, unbounded branch)."""
    batch = jax.tree.map(lambda x: x[0], _batch())
    losses = []
    for variant, scale in (("pos", 1.0), ("neg", 1.0), ("neg", 0.01)):
        agent, state = _agent(reward_variant=variant, reward_scale=scale)
        losses.append(float(agent.reward.refinement_loss(state.reward.variables, batch)))
        r = agent.reward.of_batch(state.reward.variables, batch)
        if variant == "neg":
            assert float(jnp.max(r)) <= 0.0  # ...while the critic does see the shifted, scaled reward
    np.testing.assert_allclose(losses, losses[0], rtol=1e-6)
    pos, _ = _agent(reward_variant="pos")
    neg, _ = _agent(reward_variant="neg", reward_scale=0.01)
    rv = state.reward.variables
    diff = pos.reward.of_batch(rv, batch) * 0.01 - neg.reward.of_batch(rv, batch)
    np.testing.assert_allclose(np.asarray(diff), np.asarray(diff)[0], rtol=1e-5)  # a constant shift apart


def test_actor_warmup_update_trains_critic_and_reward_only():
    agent, state = _agent(utd=2)
    update = make_update(agent)
    s, m = update(state, _batch(utd=2), jax.random.PRNGKey(1), train_actor=False)
    same = lambda x, y: all(np.array_equal(np.asarray(a), np.asarray(b))  # noqa: E731
                            for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
    assert same(s.actor, state.actor) and int(s.step) == 0
    assert not same(s.critic.params, state.critic.params) and not same(s.reward.params, state.reward.params)
    assert "kl" not in m and "critic_loss" in m
    s2, m2 = update(state, _batch(utd=2), jax.random.PRNGKey(1))  # default: the actor trains too
    assert not same(s2.actor.params, state.actor.params) and "kl" in m2


def test_agents_package_never_reads_an_algorithm_name():
    """The update is configured by components resolved in make_agent; nothing under csil_lite/agents/ may look at
    which named algorithm it runs (no `algo` identifier, no algorithm name as a string literal)."""
    import io
    import tokenize
    from pathlib import Path

    import csil_lite.agents
    from csil_lite.configs import ALGORITHMS

    names = set(ALGORITHMS) | {"csilpp", "csil++", "xqc", "xqc_od", "sacfd", "sac"}
    files = sorted(Path(csil_lite.agents.__file__).parent.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == tokenize.NAME:
                assert tok.string not in ("algo", "algorithm", "ALGOS", "ALGORITHMS"), f"{path.name}:{tok.start}"
            if tok.type == tokenize.STRING:
                value = tok.string.strip("\"'rbfu").lower()
                assert value not in names, f"{path.name}:{tok.start[0]} compares with algorithm name {tok.string}"


def test_named_configurations_are_compositions_of_components():
    """configs/: the same core with other components; preset() is a lookup into them."""
    from csil_lite.configs import ALGORITHMS, get

    for algo in ALGORITHMS:
        for budget in ("preview", "reference", "paper"):
            cfg = get(algo, budget)
            assert (cfg.algo, cfg.budget) == (algo, budget) and cfg == preset(budget, algo=algo)
    csil, sac = get("csil", "preview"), get("sac_bc", "preview")
    assert (csil.agent.prior, csil.agent.reward) == ("bc", "coherent")
    assert (sac.agent.prior, sac.agent.reward, sac.agent.n_demo, sac.critic_pretrain_steps) == ("uniform", "env", 0, 0)
    assert not get("bc", "preview").learn_online
    # Budgets differ, networks and batches are shared by the algorithms of one budget.
    assert csil.nets == sac.nets and csil.agent.n_online == sac.agent.n_online
    assert get("csil", "reference").env_steps == 250_000 and get("csil", "reference").bc_steps == 25_000


def test_train_state_steps_and_polyak():
    """One optimiser step in one place: apply_gradients is optax's update; update_target is Polyak averaging."""
    import optax

    from csil_lite.agents.state import TrainState

    variables = {"params": {"w": jnp.array([1.0, -2.0])}}
    state = TrainState.create(variables, optax.sgd(0.5), target=True)
    assert state.batch_stats == {} and TrainState.create(variables, optax.sgd(0.5)).target_params == {}
    state = state.apply_gradients({"w": jnp.array([2.0, 2.0])})
    np.testing.assert_allclose(state.params["w"], [0.0, -3.0])
    np.testing.assert_allclose(state.target_params["w"], [1.0, -2.0])  # untouched until update_target
    state = state.update_target(0.25)
    np.testing.assert_allclose(state.target_params["w"], [0.75, -2.25])
    with pytest.raises(ValueError, match="'params' collection"):
        TrainState.create({"w": jnp.zeros(2)}, optax.sgd(0.1))


def test_exact_kl_matches_a_large_sample_monte_carlo_estimate():
    """kl='exact' (latent Gaussians in closed form) equals the average of the Monte-Carlo estimator."""
    mc_agent, state = _agent()
    exact_agent, _ = _agent(kl="exact")
    moved = jax.tree.map(lambda x: x + 0.2 * jnp.sign(x + 1e-3), state.actor.variables)
    obs = jax.random.normal(jax.random.PRNGKey(1), (3, OBS))
    n = 40_000
    many = jnp.repeat(obs, n, axis=0)
    _, kl_mc = sample_with_kl(mc_agent, moved, state.prior, many, jax.random.PRNGKey(2))
    _, kl_exact = sample_with_kl(exact_agent, moved, state.prior, obs, jax.random.PRNGKey(3))
    kl_mc = np.asarray(kl_mc).reshape(3, n)
    se = kl_mc.std(axis=1) / np.sqrt(n)
    assert np.all(np.asarray(kl_exact) > 0.01)
    np.testing.assert_array_less(np.abs(kl_mc.mean(axis=1) - np.asarray(kl_exact)), 4 * se + 1e-3)
    _, kl0 = sample_with_kl(exact_agent, state.actor.variables, state.prior, obs, jax.random.PRNGKey(3))
    np.testing.assert_allclose(np.asarray(kl0), 0.0, atol=1e-6)


def _csilpp_agent(utd=1):
    """A CSIL++-style critic: batch + weight norm, categorical head on a quantile support, twin critics."""
    from csil_lite.nets.heads import quantile_support

    policy = HetStatPolicy(ACT, hidden=(16,), features=16)
    critic = make_critic((16, 16), "batch_weight", "categorical", 2, atoms=quantile_support(np.linspace(-5, -1, 50), 11))
    agent = agent_of(AgentConfig(n_demo=4, n_online=4, utd=utd, kl="exact"), policy, critic, ACT)
    key = jax.random.PRNGKey(0)
    pp = policy.init(key, jnp.zeros((1, OBS)))
    cp = critic.init(key, jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))
    return agent, init_state(agent, pp, cp)


def _kernels(params):
    return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if getattr(path[-1], "key", "") == "kernel"]


def test_batch_weight_normalised_twin_categorical_update():
    """Unit fan-in norms at init (before the target copy) and after every update; the critic's batch statistics
    come from the joint [s; s'] pass; the actor's (eval-mode) query leaves them alone; everything stays finite."""
    from csil_lite.nets.critic import joint_forward

    agent, state = _csilpp_agent(utd=2)
    for k in _kernels(state.critic.params) + _kernels(state.critic.target_params):
        np.testing.assert_allclose(np.asarray(jnp.linalg.norm(k, axis=-2)), 1.0, rtol=1e-5)
    assert all(k.shape[0] == 2 for k in _kernels(state.critic.params))  # twin critics, stacked
    update = make_update(agent)
    batch = _batch(utd=2)
    s1, m1 = update(state, batch, jax.random.PRNGKey(5))
    assert all(np.isfinite(float(v)) for v in m1.values())
    for k in _kernels(s1.critic.params):
        np.testing.assert_allclose(np.asarray(jnp.linalg.norm(k, axis=-2)), 1.0, rtol=1e-5)
    # Reproduce the first critic step's online joint pass: its statistics are what the first step stored.
    keys = jax.random.split(jax.random.PRNGKey(5), 2)  # a one-step update: keys[1] drives its critic step
    b0 = jax.tree.map(lambda x: jnp.asarray(x[0]), batch)
    next_a, _ = sample_with_kl(agent, state.actor.variables, state.prior, b0.next_obs, keys[1])
    _, _, joint = joint_forward(agent.critic.module, state.critic.variables, b0.obs, b0.action, b0.next_obs, next_a)
    _, separate = agent.critic.module.apply(state.critic.variables, b0.obs, b0.action, True, mutable=["batch_stats"])
    one_step = update(state, jax.tree.map(lambda x: x[:1], batch), jax.random.PRNGKey(5),
                                             train_actor=False)[0]
    differs = []
    for got, want, other in zip(jax.tree.leaves(one_step.critic.batch_stats), jax.tree.leaves(joint),
                                jax.tree.leaves(separate["batch_stats"])):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
        differs.append(not np.allclose(np.asarray(got), np.asarray(other)))
    # (Hidden BN means are ~0 either way: they follow a BN and a bias-free Dense; the input BN and the variances
    # see the difference.)
    assert sum(differs) >= 3
    # The actor step queries the critic in eval mode: the same critic steps with or without it, same statistics.
    s_warm, _ = update(state, batch, jax.random.PRNGKey(5), train_actor=False)
    for a, b in zip(jax.tree.leaves(s_warm.critic.batch_stats), jax.tree.leaves(s1.critic.batch_stats)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(m1["kl"]) == 0.0  # the actor starts at the BC prior: the exact KL is zero


def test_paper_budget_is_table_ii():
    """preset('paper', algo='csilpp'): the seed paper's Table II, on CSIL++'s components."""
    cfg = preset("paper", algo="csilpp")
    assert cfg.agent.n_demo + cfg.agent.n_online == 128 and cfg.replay_capacity == 250_000
    assert (cfg.learning_starts, cfg.bc_steps, cfg.critic_pretrain_steps) == (10_000, 50_000, 20_000)
    assert (cfg.env_steps, cfg.num_demos, cfg.agent.beta, cfg.agent.utd) == (510_000, 200, 0.3, 4)
    assert (cfg.nets.critic_norm, cfg.nets.critic_head, cfg.nets.critic_atoms, cfg.nets.critic_ensemble) == (
        "batch_weight", "categorical", 101, 2)
    assert cfg.agent.kl == "exact" and cfg.agent.prior == "bc" and cfg.agent.reward == "coherent"
    xqc, sacfd = preset("preview", algo="xqc_od"), preset("preview", algo="sacfd")
    assert (xqc.agent.reward, xqc.agent.prior, xqc.nets.critic_head, xqc.nets.critic_norm) == (
        "sparse", "uniform", "categorical", "batch_weight")
    assert xqc.nets.critic_v_min == pytest.approx(-1 / (1 - xqc.agent.gamma))
    assert (sacfd.agent.reward, sacfd.nets.critic_norm) == ("sparse", "layer")
    ratio = sacfd.agent.n_demo / (sacfd.agent.n_demo + sacfd.agent.n_online)
    assert ratio == pytest.approx(0.2, abs=0.005)


@pytest.mark.parametrize("algo", ["csil", "sac_bc", "bc", "csilpp", "xqc_od", "sacfd"])
def test_every_algorithm_and_budget_builds_and_updates_finitely(algo):
    """Every algo x budget config validates; at preview, shrunk by overrides, `prepare` (BC, SARSA where the config
    has it, the support) and a few updates run and stay finite."""
    from csil_lite.configs import ALGORITHMS
    from csil_lite.loop import prepare

    assert set(ALGORITHMS) == {"csil", "sac_bc", "bc", "csilpp", "xqc_od", "sacfd"}
    if algo == "csilpp":  # CSIL++'s support comes from the data, its free critic params are decayed
        assert preset("preview", algo=algo).nets.critic_v_min == "floor"
        assert preset("paper", algo=algo).agent.critic_weight_decay > 0
    for budget in ("preview", "reference", "paper"):
        assert preset(budget, algo=algo).algo == algo
    base = preset("preview", algo=algo)
    n_demo = min(base.agent.n_demo, 4)
    cfg = preset("preview", algo=algo, task="pointmass-reach", num_demos=2, bc_steps=5,
                 critic_pretrain_steps=min(base.critic_pretrain_steps, 5), bc_batch=8,
                 agent=dict(n_demo=n_demo, n_online=8 - n_demo if n_demo else 8),
                 nets=dict(policy_hidden=(8,), features=8, critic_hidden=(8,), critic_atoms=11))
    setup = prepare(cfg, progress=False)
    assert np.all(np.isfinite(setup.critic_losses))
    if not cfg.learn_online:
        return
    utd, rng = cfg.agent.utd, np.random.default_rng(0)
    idx = rng.integers(0, setup.demos.size, (utd, 8))
    batch = jax.tree.map(lambda x: jnp.asarray(x)[idx], setup.demos)
    update, state = make_update(setup.agent), setup.state
    for i in range(3):
        state, metrics = update(state, batch, jax.random.PRNGKey(i))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state))
    # A categorical critic logs the fraction of shifted atoms clipped onto its support's ends (a scalar one does not).
    assert ("clipped_frac" in metrics) == (cfg.nets.critic_head == "categorical")
    if "clipped_frac" in metrics:
        assert 0.0 <= float(metrics["clipped_frac"]) <= 1.0
        assert 0.0 < float(metrics["q_bin_width"]) <= 1.0
        assert 1 / cfg.nets.critic_atoms <= float(metrics["q_top_bin_mass"]) <= 1.0


def test_value_floor_lies_below_every_return_and_bounds_the_support():
    """The support's 'floor' is r_min / (1 - gamma): at or below every demonstration's discounted return (each is
    at least r_min (1 - gamma^T) / (1 - gamma) for r_min <= 0), below the demos' own lowest reward over an infinite
    horizon, exactly -1 / (1 - gamma) for the sparse reward; `prepare` puts the first atom there."""
    from csil_lite.agents.components import SparseReward
    from csil_lite.loop import prepare
    from csil_lite.nets.heads import discounted_returns

    cfg = preset("preview", algo="csilpp", task="pointmass-reach", num_demos=3, bc_steps=200, critic_pretrain_steps=0,
                 nets=dict(policy_hidden=(16,), features=16, critic_hidden=(8,), critic_atoms=11))
    setup = prepare(cfg, progress=False)
    demos, gamma = jax.tree.map(jnp.asarray, setup.demos), cfg.agent.gamma
    r = np.asarray(setup.agent.reward.of_batch(setup.state.prior, demos))
    floor = setup.agent.reward.value_floor(setup.state.prior, demos, r, gamma, jax.random.PRNGKey(0))
    assert floor <= min(r.min(), 0.0) / (1 - gamma) + 1e-4
    assert floor <= discounted_returns(r, setup.demos.last, gamma).min()
    assert setup.agent.critic.head.atoms[0] == pytest.approx(
        setup.agent.reward.value_floor(setup.state.prior, demos, r, gamma, jax.random.PRNGKey(cfg.seed + 3)))
    assert SparseReward().value_floor({}, demos, r, 0.99, jax.random.PRNGKey(0)) == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="critic_v_min"):
        preset("preview", algo="csilpp", nets=dict(critic_v_min="lowest"))


def test_critic_weight_decay_acts_only_on_what_weight_norm_leaves_free():
    """AdamW's decay shrinks batch-norm scales and biases but never a projected kernel; with no weight norm it
    shrinks every param; at 0 it is exactly Adam."""
    import optax

    from csil_lite.agents.critic import critic_optimiser

    params = {"Dense_0": {"kernel": jnp.full((3, 2), 0.5)},
              "BatchNorm_0": {"scale": jnp.full((2,), 2.0), "bias": jnp.full((2,), -1.0)}}
    zero = jax.tree.map(jnp.zeros_like, params)  # no gradient: Adam's own step is 0, only the decay moves params
    lr, wd = 0.1, 0.3

    def step(tx):
        updates, _ = tx.update(zero, tx.init(params), params)
        return optax.apply_updates(params, updates)

    wn = step(critic_optimiser(lr, wd, weight_norm=True))
    np.testing.assert_array_equal(wn["Dense_0"]["kernel"], params["Dense_0"]["kernel"])
    np.testing.assert_allclose(wn["BatchNorm_0"]["scale"], 2.0 * (1 - lr * wd), rtol=1e-6)
    np.testing.assert_allclose(wn["BatchNorm_0"]["bias"], -1.0 * (1 - lr * wd), rtol=1e-6)
    plain = step(critic_optimiser(lr, wd, weight_norm=False))
    np.testing.assert_allclose(plain["Dense_0"]["kernel"], 0.5 * (1 - lr * wd), rtol=1e-6)
    grads = jax.tree.map(lambda x: 0.3 * x + 0.1, params)
    a, b = critic_optimiser(lr, 0.0, weight_norm=True), optax.adam(lr)
    ua, _ = a.update(grads, a.init(params), params)
    ub, _ = b.update(grads, b.init(params), params)
    jax.tree.map(np.testing.assert_array_equal, ua, ub)


def test_critic_weight_decay_bounds_a_param_the_loss_pushes_forever():
    """A loss linear in a free param (its gradient never vanishes) grows it linearly under Adam; AdamW keeps it
    below max|u| / lambda (Adam's normalised step |u| is about 1 here): the bound of `critic_optimiser`."""
    import optax

    from csil_lite.agents.critic import critic_optimiser

    params = {"BatchNorm_0": {"bias": jnp.zeros(3)}}
    grads = {"BatchNorm_0": {"bias": -jnp.ones(3)}}  # d(-sum b)/db: the loss always wants a larger bias

    def run(wd, steps=3000, lr=0.01):
        tx = critic_optimiser(lr, wd, weight_norm=True)
        p, s = params, tx.init(params)
        for _ in range(steps):
            u, s = tx.update(grads, s, p)
            p = optax.apply_updates(p, u)
        return float(p["BatchNorm_0"]["bias"][0])

    assert run(0.0) == pytest.approx(30.0, rel=1e-3)  # lr per step, 3000 steps
    bounded = run(0.3)
    assert 0.9 / 0.3 < bounded <= 1.0 / 0.3 + 1e-3
