"""The stand-in's flow-matching recipe on cases with a known answer, a tiny training run, checkpoints, and the
stand-in served through the protocol with a pi0.5-style observation (images and prompt ignored)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.base import standin as si
from csil_lite.base.policy import LOWDIM_KEY, ObservationError

C = np.array([0.3, -0.5], np.float32)  # the point-mass data distribution: every chunk row is C


def exact_velocity(c):
    """For data a = c, the flow x_t = t*eps + (1-t)*c has velocity eps - c = (x_t - c) / t."""
    return lambda x, t: (x - c) / t[:, None, None]


def test_flow_path_endpoints_and_target():
    a = jnp.asarray(np.random.default_rng(0).standard_normal((4, 10, 2)), jnp.float32)
    eps = jnp.asarray(np.random.default_rng(1).standard_normal((4, 10, 2)), jnp.float32)
    x0, u = si.flow_path(a, eps, jnp.zeros(4))
    x1, _ = si.flow_path(a, eps, jnp.ones(4))
    np.testing.assert_allclose(x0, a)
    np.testing.assert_allclose(x1, eps)
    np.testing.assert_allclose(u, eps - a)
    h = 1e-3  # the target is d x_t / dt
    xa, _ = si.flow_path(a, eps, jnp.full(4, 0.4))
    xb, _ = si.flow_path(a, eps, jnp.full(4, 0.4 + h))
    np.testing.assert_allclose((xb - xa) / h, u, atol=1e-2)


def test_time_distribution_is_pi0s_beta():
    t = np.asarray(si.sample_times(jax.random.PRNGKey(0), 40_000))
    assert t.min() >= 0.001 and t.max() <= 1.0
    # Beta(1.5, 1): mean 0.6, P(t < 0.5) = 0.5 ** 1.5; scaled by 0.999, shifted by 0.001
    assert abs(t.mean() - (0.6 * 0.999 + 0.001)) < 5e-3
    assert abs(np.mean(t < 0.5 * 0.999 + 0.001) - 0.5 ** 1.5) < 8e-3


def test_loss_is_zero_for_the_exact_velocity_and_known_otherwise():
    a = jnp.broadcast_to(jnp.asarray(C), (2048, 10, 2))
    key = jax.random.PRNGKey(3)
    assert float(si.flow_loss(exact_velocity(C), a, key)) < 1e-8
    # v = 0: E[(eps - c)^2] = 1 + c^2 per element
    expected = 1.0 + float(np.mean(C ** 2))
    assert abs(float(si.flow_loss(lambda x, t: jnp.zeros_like(x), a, key)) - expected) < 0.03


def test_euler_sampler_reaches_the_point_mass_exactly():
    noise = jnp.asarray(np.random.default_rng(2).standard_normal((5, 10, 2)) * 3, jnp.float32)
    out = si.euler_sample(exact_velocity(C), noise, steps=10)
    np.testing.assert_allclose(out, np.broadcast_to(C, (5, 10, 2)), atol=1e-5)
    # with a constant wrong velocity the sampler moves by exactly -v over [1, 0]
    np.testing.assert_allclose(si.euler_sample(lambda x, t: jnp.ones_like(x), noise, 10), noise - 1.0, atol=1e-5)


def test_time_features():
    f = np.asarray(si.time_features(jnp.array([0.0, 1.0]), 32))
    assert f.shape == (2, 32)
    np.testing.assert_allclose(f[0, :16], 0.0)
    np.testing.assert_allclose(f[0, 16:], 1.0)
    np.testing.assert_allclose(f[1, 15], np.sin(2 * np.pi / 4.0), atol=1e-6)  # the longest period, 4


def test_chunk_targets_pad_with_the_last_action():
    acts = np.arange(6, dtype=np.float32).reshape(3, 2)
    ch = si.chunk_targets(acts, 4)
    assert ch.shape == (3, 4, 2)
    np.testing.assert_array_equal(ch[0], [[0, 1], [2, 3], [4, 5], [4, 5]])
    np.testing.assert_array_equal(ch[2], [[4, 5]] * 4)


@pytest.fixture(scope="module")
def trained():
    """A small stand-in fitted to a conditional point mass: chunk rows = C * sign(obs[0])."""
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((512, 3)).astype(np.float32)
    chunks = np.broadcast_to(C, (512, 10, 2)) * np.sign(obs[:, :1, None])
    cfg = si.StandInConfig(obs_dim=3, action_dim=2, hidden=64, embed_dim=32, layers=2)
    res = si.train_standin(cfg, obs, chunks, steps=400, batch_size=128, lr=3e-3, progress=False)
    return cfg, res


def test_training_fits_the_conditional_point_mass(trained):
    cfg, res = trained
    assert res.losses[-1] < 0.5 * res.losses[0]
    pol = si.StandInPolicy(cfg, res.params, res.obs_mean, res.obs_std, task="toy", seed=0)
    out = pol.sample(np.array([[2.0, 0, 0], [-2.0, 0, 0]], np.float32))
    assert out.shape == (2, 10, 2)
    np.testing.assert_allclose(out[0].mean(0), C, atol=0.1)
    np.testing.assert_allclose(out[1].mean(0), -C, atol=0.1)
    assert pol.embedding(np.zeros(3)).shape == (1, 32)


def test_checkpoint_round_trip(trained, tmp_path):
    cfg, res = trained
    pol = si.StandInPolicy(cfg, res.params, res.obs_mean, res.obs_std, task="toy", info={"steps": 400})
    si.save_standin(tmp_path / "ck", pol)
    assert sum(f.stat().st_size for f in (tmp_path / "ck").iterdir()) < 2 * 2**20
    back = si.load_standin(tmp_path / "ck")
    noise = np.random.default_rng(5).standard_normal((3, 10, 2))
    o = np.random.default_rng(6).standard_normal((3, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.sample(o, noise), pol.sample(o, noise))
    assert back.cfg == cfg and back.task == "toy" and back.info == {"steps": 400}
    with pytest.raises(ValueError, match=r"missing \['standin.json', 'params.npz'\]"):
        si.load_standin(tmp_path)


def test_served_standin_ignores_images_and_prompt(trained):
    from csil_lite.base.client import RemoteBasePolicy
    from csil_lite.base.server import ServerThread

    cfg, res = trained
    pol = si.StandInPolicy(cfg, res.params, res.obs_mean, res.obs_std)
    request = {LOWDIM_KEY: np.array([2.0, 0, 0], np.float32), "prompt": "lift",
               "observation/image": np.zeros((224, 224, 3), np.uint8),
               "observation/wrist_image": np.zeros((224, 224, 3), np.uint8),
               "observation/state": np.zeros(8)}
    with ServerThread(pol, port=0) as srv, RemoteBasePolicy("127.0.0.1", srv.port, wait=0) as client:
        assert client.metadata["model"] == si.MODEL_NAME
        a = client.infer(request)["actions"]
    assert a.shape == (10, 2) and np.allclose(a.mean(0), C, atol=0.1)
    with pytest.raises(ObservationError, match="misses required key"):
        pol.infer({"prompt": "x"})


def test_stored_standins_load_and_match_their_summary():
    """book/_artefacts/base (made by scripts/make_standin.py): each loads, is small, and records what the
    summary says (success rate of the base alone, training budget)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "book" / "_artefacts" / "base"
    summary = json.loads((root / "summary.json").read_text())
    assert summary, "no stored stand-ins"
    for name, facts in summary.items():
        d = root / name
        assert sum(f.stat().st_size for f in d.iterdir()) < 2 * 2**20, name
        meta = json.loads((d / "standin.json").read_text())
        assert meta["task"] == facts["task"] and meta["info"]["train_steps"] == facts["train_steps"]
        assert meta["info"]["success_rate"] == facts["success_rate"]
        cfg = si.StandInConfig(**meta["config"])
        assert cfg.horizon == 10 and len(meta["obs_mean"]) == cfg.obs_dim
        with np.load(d / "params.npz") as z:  # the parameters of that network, without building it
            assert sum(z[k].size for k in z.files) == facts["params"]
            assert z["out/kernel"].shape == (cfg.hidden, cfg.horizon * cfg.action_dim)


def test_activations_are_the_action_experts_state_at_the_first_step_and_move_with_the_noise(trained):
    cfg, res = trained
    pol = si.StandInPolicy(cfg, res.params, res.obs_mean, res.obs_std, seed=0)
    obs = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    noise = np.random.default_rng(2).standard_normal((6, 10, 2)).astype(np.float32)
    h = pol.activations(obs, noise)
    assert h.shape == (6, 64)
    np.testing.assert_array_equal(pol.activations(obs, noise), h)
    assert not np.allclose(pol.activations(obs, noise[::-1]), h)  # another flow-noise draw moves them
    # zero layers: the velocity MLP's input, [embedding, the noise itself, the features of t = 1]
    x0 = pol.activations(obs, noise, layers=0)
    np.testing.assert_allclose(x0[:, :32], pol.embedding(obs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x0[:, 32:52], noise.reshape(6, 20), rtol=1e-6)
    # the last layer's activations give the sampler's first velocity through the output layer
    net = si.FlowNet(cfg)
    v = net.apply({"params": res.params}, (obs - res.obs_mean) / res.obs_std, jnp.asarray(noise), jnp.ones(6))
    w, b = res.params["out"]["kernel"], res.params["out"]["bias"]
    np.testing.assert_allclose(np.asarray(v).reshape(6, -1), h @ np.asarray(w) + np.asarray(b), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="noise of shape"):
        pol.activations(obs, noise[:, :5])
    with pytest.raises(ValueError, match="layers"):
        pol.activations(obs, noise, layers=3)
