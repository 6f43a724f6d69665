"""The embedding at the environment's edge (`EmbedConfig`, chapter 10's end-to-end test): the third remedy
(the discriminant projection), the policy's view of a state, the wrapped environment, and a run that sees it."""

import json

import numpy as np
import pytest

from csil_lite import diagnostics as dg
from csil_lite.config import EmbedConfig, RunConfig
from csil_lite.configs import preset
from csil_lite.embeddings import EmbeddingEdge, NoEmbedding, embedding_edge, fit_remedy, state_view, \
    synthetic_embedding
from csil_lite.envs.registry import make_env
from csil_lite.errors import UserError
from csil_lite.evaluation import rollout_observations


def test_discriminant_projection_keeps_the_signal_subspace_and_whitens_the_nuisance_there():
    rng = np.random.default_rng(0)
    d, k = 12, 3
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    signal_dirs, nuisance_dirs = basis[:, :k], basis[:, k:]
    n = 40_000
    signal = rng.normal(size=(n, k)) @ signal_dirs.T * 2.0  # varies with the state only
    noise = rng.normal(size=(n, d - k)) * np.linspace(1.0, 5.0, d - k)  # large, anisotropic nuisance
    a = signal + noise @ nuisance_dirs.T
    b = signal + (rng.normal(size=(n, d - k)) * np.linspace(1.0, 5.0, d - k)) @ nuisance_dirs.T
    within = dg.within_state_covariance(a, b)
    proj = dg.discriminant_projection(np.cov(a, rowvar=False), within, k)
    assert proj.matrix.shape == (d, k)
    # the kept directions see (almost) none of the nuisance, relative to what they see of the signal
    kept = proj.matrix
    nuisance_share = np.linalg.norm(nuisance_dirs.T @ kept) / np.linalg.norm(signal_dirs.T @ kept)
    assert nuisance_share < 0.05, nuisance_share
    # asking for more directions than the signal has adds nuisance directions, whitened to unit variance
    more = dg.discriminant_projection(np.cov(a, rowvar=False), within, k + 2)
    extra = more.matrix[:, k:]
    np.testing.assert_allclose(extra.T @ within @ extra, np.eye(2), atol=0.05)


def test_discriminant_projection_refuses_bad_shapes():
    with pytest.raises(ValueError, match="k = 0"):
        dg.discriminant_projection(np.eye(3), np.eye(3), 0)
    with pytest.raises(ValueError, match="one shape"):
        dg.discriminant_projection(np.eye(3), np.eye(4), 1)


def test_sngp_projection_keeps_distances_and_normalises_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 512)) * 3.0 + 1.0
    proj = dg.sngp_projection(512, 256, seed=0)
    y = proj(x)
    assert y.shape == (200, 256)
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=1), 1.0, atol=1e-4)
    # before the normalisation the projection keeps pairwise distances (Johnson-Lindenstrauss)
    z = x @ proj.matrix
    ratio = np.linalg.norm(z[:100] - z[100:], axis=1) / np.linalg.norm(x[:100] - x[100:], axis=1)
    assert np.all(np.abs(ratio - 1.0) < 0.25), (ratio.min(), ratio.max())
    with pytest.raises(ValueError, match="k >= 1"):
        dg.sngp_projection(8, 0)


def test_linear_signal_is_an_exact_linear_map_of_the_state():
    embed = synthetic_embedding(3, 440, signal_dims=400, signal="linear", seed=1)
    s = np.random.default_rng(2).normal(size=(500, 3))
    x = embed(s, seed=0)[:, :400]
    np.testing.assert_allclose(x, s @ embed.signal_weights, rtol=1e-5, atol=1e-5)
    assert np.mean(x ** 2) == pytest.approx(1.0, abs=0.15)  # unit mean square per coordinate (in expectation)
    with pytest.raises(ValueError, match="signal"):
        synthetic_embedding(3, 40, signal="cubic")


@pytest.mark.parametrize("remedy", ["none", "whiten", "project", "discriminant", "demo_whiten", "sngp"])
def test_state_view_has_unit_scale_on_the_demonstrations_and_is_seeded(remedy):
    states = np.random.default_rng(3).normal(size=(300, 4)) * [1.0, 10.0, 0.1, 5.0] + 7.0
    cfg = EmbedConfig(kind="synthetic", dim=48, signal_dims=8, remedy=remedy, remedy_pairs=600,
                      discriminant_dims=6)
    view = state_view(cfg, states, seed=0)
    x = view(states, seed=1)
    assert x.shape == (300, view.dim) and view.dim == {"discriminant": 6, "sngp": 32}.get(remedy, 48)
    assert np.mean(x.astype(np.float64) ** 2) == pytest.approx(1.0, rel=0.1)
    np.testing.assert_array_equal(view(states, seed=1), x)  # same nuisance seed, same embedding
    redrawn = view(states, seed=2)  # another draw of the nuisance: gone only where the remedy projected it out
    assert np.allclose(redrawn, x, atol=1e-4) == (remedy == "project")
    oracle = state_view(EmbedConfig(kind="synthetic", dim=48, signal_dims=8, oracle_scale=3.0), states)
    z = (states - states.mean(0)) / states.std(0)
    np.testing.assert_allclose(oracle(states, seed=0)[:, -4:], 3.0 * z, rtol=1e-4, atol=1e-4)


def test_fit_remedy_none_is_the_identity_and_whitening_a_noop_for_white_nuisance():
    embed = synthetic_embedding(2, 16, signal_dims=4, seed=0)
    states = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    np.testing.assert_array_equal(fit_remedy("none", embed, states, seed=0).matrix, np.eye(16))
    np.testing.assert_allclose(dg.whitening(np.eye(16)).matrix, np.eye(16), atol=1e-12)
    with pytest.raises(ValueError, match="unknown remedy"):
        fit_remedy("magic", embed, states, seed=0)


def test_embed_config_is_validated():
    with pytest.raises(UserError, match="signal_dims"):
        EmbedConfig(kind="synthetic", dim=8, signal_dims=16)
    with pytest.raises(UserError, match="needs an embedding"):
        EmbedConfig(remedy="whiten")
    with pytest.raises(UserError, match="obs='state'"):
        preset("preview", algo="csil", task="lift", obs="image", embed=dict(kind="synthetic"))
    cfg = preset("preview", algo="csil", embed=dict(kind="synthetic", remedy="discriminant"))
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = cfg.to_dict()
    old.pop("embed")  # a config.json written before the embed section reads as the state as it is
    assert RunConfig.from_dict(old).embed == EmbedConfig()


def test_embedded_env_repeats_an_episode_from_its_seed_and_redraws_the_nuisance_each_step():
    states = np.random.default_rng(0).uniform(-1, 1, (100, 6))
    edge = embedding_edge(EmbedConfig(kind="synthetic", dim=32, signal_dims=8, remedy_pairs=200),
                          lambda: states, seed=0)
    assert isinstance(edge, EmbeddingEdge)
    assert isinstance(embedding_edge(EmbedConfig(), lambda: 1 / 0), NoEmbedding)  # nothing fitted, nothing read
    env = edge.wrap(make_env("pointmass-reach", seed=0))
    assert env.observation_space.shape == (32,)
    first, _ = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    nxt = env.step(np.zeros(2, np.float32))[0]
    assert nxt.shape == (32,) and not np.allclose(nxt[8:], first[8:])
    env.close()


def test_rollout_observations_counts_every_step():
    envs = [make_env("pointmass-reach", seed=0) for _ in range(2)]
    obs = rollout_observations(envs, lambda o: np.zeros((len(o), 2), np.float32), episodes=3, seed=0)
    assert obs.shape == (3 * 100, 6)  # three full-horizon episodes of the still point mass
    with pytest.raises(ValueError, match="episodes >= 1"):
        rollout_observations(envs, lambda o: o, episodes=0, seed=0)


@pytest.mark.slow
def test_a_run_sees_the_embedding_and_resumes(tmp_path):
    from csil_lite.collapse import bc_policy_gap
    from csil_lite.loop import load_run, prepare, read_metrics, train

    cfg = preset("preview", algo="csil", task="pointmass-reach", num_demos=2, bc_steps=60, critic_pretrain_steps=20,
                 env_steps=200, learning_starts=50, eval_every=100, eval_episodes=2, replay_capacity=500,
                 agent=dict(n_demo=16, n_online=16), nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)),
                 embed=dict(kind="synthetic", dim=24, signal_dims=8, remedy="discriminant", discriminant_dims=10,
                            remedy_pairs=100))
    setup = prepare(cfg, progress=False)
    assert setup.demos.obs.shape[1] == 10 and setup.demos.next_obs.shape[1] == 10
    gap = bc_policy_gap(cfg, setup, episodes=2)
    assert gap.online_states > 0 and np.isfinite(gap.gap)
    train(cfg, tmp_path / "run", progress=False, stop_after=100)
    train(cfg, tmp_path / "run", progress=False)
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [0, 100, 200]
    agent, state = load_run(tmp_path / "run")
    assert agent.policy.apply(state.actor.variables, setup.demos.obs[:3])[0].shape == (3, 2)


def test_standin_view_reads_the_stored_standin_and_checks_its_state_size():
    from pathlib import Path

    source = str(Path(__file__).resolve().parents[1] / "book" / "_artefacts" / "base" / "pointmass-reach_1000")
    states = np.random.default_rng(0).uniform(-1, 1, (64, 6))
    view = state_view(EmbedConfig(kind="standin", source=source, remedy_pairs=64), states)
    assert view.raw_input and view.dim == 256
    x = view(states, seed=0)
    np.testing.assert_array_equal(view(states, seed=0), x)
    assert not np.allclose(view(states, seed=1), x)  # the stand-in's own flow noise, redrawn
    with pytest.raises(ValueError, match="6-dimensional"):
        state_view(EmbedConfig(kind="standin", source=source), states[:, :4])
    with pytest.raises(UserError, match="source"):
        EmbedConfig(kind="standin")
    with pytest.raises(UserError, match="layers"):
        EmbedConfig(kind="synthetic", layers=1)


def test_the_cli_sets_the_embed_section(tmp_path):
    from csil_lite.train import build_parser, config_from_args

    args = build_parser().parse_args(["--out", str(tmp_path), "--task", "pointmass-obstacles", "--preset", "preview",
                                      "--set", "embed.kind=synthetic", "--set", "embed.remedy=discriminant",
                                      "--set", "embed.oracle_scale=2.0"])
    embed = config_from_args(args).embed
    assert (embed.kind, embed.remedy, embed.oracle_scale) == ("synthetic", "discriminant", 2.0)
    bad = build_parser().parse_args(["--out", str(tmp_path), "--set", "embed.remedy=magic"])
    with pytest.raises(UserError, match="remedy"):
        config_from_args(bad)


@pytest.mark.slow
def test_a_diverged_agent_is_named_not_passed_to_the_env(tmp_path, monkeypatch):
    import csil_lite.loop as loop

    real = loop.make_act

    def nan_when_exploring(agent):
        act = real(agent)
        return lambda v, o, k, deterministic: act(v, o, k, deterministic) * (1.0 if deterministic else np.nan)

    monkeypatch.setattr(loop, "make_act", nan_when_exploring)
    cfg = preset("preview", algo="csil", task="pointmass-reach", num_demos=2, bc_steps=20, critic_pretrain_steps=0,
                 env_steps=100, learning_starts=50, eval_every=100, eval_episodes=2, replay_capacity=500,
                 agent=dict(n_demo=16, n_online=16), nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)))
    with pytest.raises(loop.AgentDiverged, match="not finite at env step 0"):
        loop.train(cfg, tmp_path / "run", progress=False)
