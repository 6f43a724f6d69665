"""The HetStat health diagnostic (std on demos vs off data vs the ceiling) and the BC action margin."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.diagnostics import perturbed_states, uncertainty_diagnostic, uniform_states
from csil_lite.nets import HetStatPolicy, MLPPolicy
from csil_lite.pretrain import train_bc
from csil_lite.pretrain.bc import clip_actions


class ConstantStd(nn.Module):
    """A 'policy' whose std is the same everywhere."""

    std: float = 0.3
    action_dim: int = 2

    @nn.compact
    def __call__(self, obs):
        shape = (*obs.shape[:-1], self.action_dim)
        return jnp.zeros(shape), jnp.full(shape, self.std)

    @property
    def max_std(self) -> float:
        return 0.5


class GrowsOffData(nn.Module):
    """std = 0.1 at the origin, rising to 0.5 with the distance from it (a synthetic healthy policy)."""

    @nn.compact
    def __call__(self, obs):
        r2 = jnp.sum(jnp.square(obs), axis=-1, keepdims=True)
        std = 0.1 + 0.4 * (1.0 - jnp.exp(-r2 / 0.02))
        return jnp.zeros_like(std), std

    @property
    def max_std(self) -> float:
        return 0.5


DEMOS = np.random.default_rng(0).normal(scale=0.05, size=(400, 3)).astype(np.float32)


def test_constant_std_gives_ratio_one():
    d = uncertainty_diagnostic(ConstantStd(), {}, DEMOS)
    assert d.ratio == pytest.approx(1.0)
    np.testing.assert_allclose(d.ratio_per_dim, 1.0)
    np.testing.assert_allclose(d.std_on, 0.3)
    assert d.ceiling == 0.5 and d.at_ceiling_on == 0.0
    assert "off/on 1.00x" in d.summary()


def test_std_growing_off_data_gives_ratio_above_one():
    d = uncertainty_diagnostic(GrowsOffData(), {}, DEMOS, scale=4.0)
    assert d.median_on < 0.25 and d.ratio > 1.5
    # the farther the off-data states, the larger the ratio
    assert uncertainty_diagnostic(GrowsOffData(), {}, DEMOS, scale=8.0).ratio > d.ratio


def test_ceiling_and_at_ceiling_fraction():
    assert HetStatPolicy(1).max_std == pytest.approx(np.sqrt(0.75))
    assert MLPPolicy(1).max_std == pytest.approx(1.0 + np.sqrt(1e-5))
    d = uncertainty_diagnostic(ConstantStd(std=0.4999), {}, DEMOS)
    assert d.at_ceiling_on == 1.0


def test_off_states_are_drawn_as_documented():
    obs = np.random.default_rng(1).normal(size=(20_000, 2)).astype(np.float32)
    obs *= np.array([1.0, 3.0], np.float32)
    obs[:, 0] += 5.0
    np.testing.assert_array_equal(perturbed_states(obs, scale=0.0), obs)
    noise = perturbed_states(obs, scale=0.5, seed=3) - obs
    np.testing.assert_allclose(noise.std(0), 0.5 * obs.std(0), rtol=0.03)
    np.testing.assert_allclose(noise.mean(0), 0.0, atol=0.03)
    np.testing.assert_array_equal(perturbed_states(obs, seed=3), perturbed_states(obs, seed=3))
    u = uniform_states(np.array([-1.0, 2.0]), np.array([1.0, 2.5]), 5000)
    assert u.shape == (5000, 2) and u[:, 0].min() >= -1 and u[:, 1].max() <= 2.5 and u[:, 1].min() >= 2.0
    with pytest.raises(ValueError, match="scale"):
        perturbed_states(obs, scale=-1.0)
    with pytest.raises(ValueError, match="low <= high"):
        uniform_states(np.array([1.0]), np.array([0.0]), 3)


def test_explicit_off_states_and_per_dim_table():
    far = DEMOS + 10.0
    d = uncertainty_diagnostic(GrowsOffData(), {}, DEMOS, far, off_description="far away")
    assert d.median_off == pytest.approx(0.5, abs=1e-4) and "far away" in d.summary()
    assert len(d.per_dim_table(["grip"]).splitlines()) == 2
    with pytest.raises(ValueError, match="names"):
        d.per_dim_table(["a", "b"])


def test_clip_actions():
    a = np.array([[-1.0, 0.95, 0.2]], np.float32)
    np.testing.assert_array_equal(clip_actions(a, 0.0), a)
    np.testing.assert_allclose(clip_actions(a, 0.1), [[-0.9, 0.9, 0.2]])
    with pytest.raises(ValueError, match="margin"):
        clip_actions(a, 1.0)


def test_saturated_actions_drive_the_bc_std_to_the_ceiling_and_the_margin_prevents_it():
    """The mechanism of issue 9: demo actions at exactly +-1 put the faithful-BC std at its ceiling."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (512, 1)).astype(np.float32)
    act = np.clip(2.0 * obs + 0.05 * rng.normal(size=obs.shape), -1, 1).astype(np.float32)  # half saturated
    pol = HetStatPolicy(1, hidden=(32, 32), features=32, init_log_input_scale=-1.0)
    sat = np.abs(act[:, 0]) >= 1.0
    assert 0.3 < sat.mean() < 0.7
    stds = {}
    for margin in (0.0, 0.1):
        fit = train_bc(pol, obs, act, steps=1500, seed=0, learning_rate=3e-3, action_margin=margin,
                       progress=False)
        stds[margin] = np.asarray(pol.apply(fit.params, obs)[1])[:, 0]
    assert np.median(stds[0.0][sat]) > 0.95 * pol.max_std, np.median(stds[0.0][sat])
    assert np.median(stds[0.1][sat]) < 0.5 * pol.max_std, np.median(stds[0.1][sat])


def test_config_margin_and_length_scale_are_validated_and_passed_on():
    from csil_lite.config import NetworkConfig, RunConfig
    from csil_lite.configs import preset

    with pytest.raises(ValueError, match="demo_action_margin"):
        RunConfig(demo_action_margin=1.0)
    assert NetworkConfig(init_log_input_scale=-1.0).policy_kwargs()["init_log_input_scale"] == -1.0
    assert RunConfig().demo_action_margin == 0.0  # the reference clips nothing
    cfg = preset("preview")
    assert cfg.demo_action_margin > 0 and RunConfig.from_dict(cfg.to_dict()) == cfg
