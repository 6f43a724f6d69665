"""Critic probes (csil_lite.probes) and steps-to-threshold (csil_lite.evaluation)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.configs import preset
from csil_lite.evaluation import steps_to_threshold, success_auc
from csil_lite.loop import prepare
from csil_lite.assembly import make_critic
from csil_lite.probes import critic_probe, hidden_kernels

OBS, ACT = 5, 2

# -- steps_to_threshold --------------------------------------------------------------------------------------------


def test_steps_to_threshold_first_crossing():
    steps = [0, 1000, 2000, 3000, 4000]
    assert steps_to_threshold(steps, [0.2, 0.5, 0.8, 0.7, 0.9], 0.8) == 2000  # >= counts, first hit only
    assert steps_to_threshold(steps, [0.2, 0.5, 0.79, 0.7, 0.81], 0.8) == 4000
    assert steps_to_threshold(steps, [0.9, 0.1, 0.1, 0.1, 0.1], 0.8) == 0  # already there at the start
    assert steps_to_threshold(steps, [0.2, 0.5, 0.7, 0.7, 0.79], 0.8) is None
    assert steps_to_threshold(steps, [np.nan, 0.5, np.nan, 0.85, 0.9], 0.8) == 3000  # NaN never counts
    assert isinstance(steps_to_threshold(np.array(steps), np.array([0, 0, 1, 1, 1.0]), 0.5), int)


def test_steps_to_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="one length"):
        steps_to_threshold([0, 1, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        steps_to_threshold([0, 2, 1], [0.1, 0.2, 0.3], 0.5)


def test_success_auc_is_the_mean_success_under_the_trapezoid_rule():
    steps = [0, 1000, 2000, 3000]
    assert success_auc(steps, [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)  # a flat curve: its level
    # a ramp 0 -> 1 over 2,000 steps then flat: area 1,000 x 1 + 1,000 x 0.5 (ramp) ... divided by 3,000
    assert success_auc(steps, [0.0, 0.5, 1.0, 1.0]) == pytest.approx((0.25 + 0.75 + 1.0) * 1000 / 3000)
    # up to a step between evaluations: the curve is interpolated there
    assert success_auc(steps, [0.0, 1.0, 1.0, 1.0], up_to=500) == pytest.approx(0.25)
    # paired comparisons read the same window: a run that got there earlier has the larger area
    assert success_auc(steps, [0, 1, 1, 1]) > success_auc(steps, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="from 0"):
        success_auc([1000, 2000], [0.1, 0.2])
    with pytest.raises(ValueError, match="outside"):
        success_auc(steps, [0, 0, 0, 0], up_to=5000)


# -- hidden kernels and the scale invariance the chapter builds on --------------------------------------------------


@pytest.mark.parametrize("norm", ["none", "layer", "batch", "batch_weight"])
@pytest.mark.parametrize("ensemble", [1, 2])
def test_hidden_kernels_are_all_but_the_output_layer(norm, ensemble):
    critic = make_critic((16, 8), norm, "categorical", ensemble, atoms=np.linspace(-5, 0, 11))
    params = critic.module.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))["params"]
    shapes = [k.shape[-2:] for k in hidden_kernels(params)]
    assert shapes == [(OBS + ACT, 16), (16, 8)]
    assert all(k.ndim == (3 if ensemble > 1 else 2) for k in hidden_kernels(params))


def test_batch_norm_makes_the_loss_scale_invariant_in_the_kernel():
    """The premise of weight normalisation here: with BN after a Dense layer (train mode), f(cW) ~= f(W), so the
    gradient of any loss of the output is orthogonal to W (and a step can only lengthen W)."""
    critic = make_critic((32, 32), "batch", "scalar", 1)
    x, a = jax.random.normal(jax.random.PRNGKey(1), (64, OBS)), jax.random.normal(jax.random.PRNGKey(2), (64, ACT))
    v = critic.module.init(jax.random.PRNGKey(0), x[:1], a[:1])
    y = jax.random.normal(jax.random.PRNGKey(3), (64,))

    def loss(w, scale=1.0):
        params = {**v["params"], "Dense_1": {"kernel": scale * w}}
        out, _ = critic.module.apply({**v, "params": params}, x, a, True, mutable=["batch_stats"])
        return jnp.mean(jnp.square(out - y))

    w = v["params"]["Dense_1"]["kernel"]
    assert float(loss(w, 10.0)) == pytest.approx(float(loss(w)), rel=1e-2)  # epsilon 1e-3 breaks it only slightly
    g = jax.grad(loss)(w)
    cosine = float(jnp.sum(g * w) / (jnp.linalg.norm(g) * jnp.linalg.norm(w)))
    assert abs(cosine) < 1e-3, cosine
    # without normalisation neither holds
    plain = make_critic((32, 32), "none", "scalar", 1)
    vp = plain.module.init(jax.random.PRNGKey(0), x[:1], a[:1])
    dense = vp["params"]["Dense_1"]

    def f(scale):
        params = {**vp["params"], "Dense_1": {**dense, "kernel": scale * dense["kernel"]}}
        return plain.module.apply({"params": params}, x, a)

    assert float(jnp.max(jnp.abs(f(10.0) - f(1.0)))) > 1e-2


# -- the probe ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_setup():
    cfg = preset("preview", algo="csilpp", task="pointmass-reach", num_demos=3, bc_steps=50, critic_pretrain_steps=0,
                 nets={"policy_hidden": (16, 16), "features": 16, "critic_hidden": (16, 16), "critic_atoms": 21},
                 agent={"n_demo": 16, "n_online": 16})
    return cfg, prepare(cfg, progress=False)


def _setup(base_setup, agent=None, **nets):
    cfg, s0 = base_setup
    from csil_lite.config import with_overrides

    return prepare(with_overrides(cfg, nets=nets, agent=agent or {}), progress=False, bc_from=s0)


def test_probe_weight_norm_keeps_unit_fan_in(base_setup):
    """batch_weight: every hidden fan-in has unit norm after every update, so ||W_hidden|| is exactly
    sqrt(ensemble * sum of hidden widths); without the projection the same norm grows."""
    wn = critic_probe(_setup(base_setup, critic_norm="batch_weight"), updates=60, every=20)
    assert wn.finite.all() and wn.utd == 4 and list(wn.updates) == [20, 40, 60]
    assert list(wn.critic_steps) == [80, 160, 240]
    np.testing.assert_allclose(wn.hidden_norm, np.sqrt(2 * (16 + 16)), rtol=1e-5)
    assert wn.initial_hidden_norm == pytest.approx(np.sqrt(2 * (16 + 16)), rel=1e-5)  # projected at init too
    assert np.all((wn.clipped_frac >= 0) & (wn.clipped_frac <= 1))
    # plain Adam: without weight norm, CSIL++'s AdamW decay would shrink the kernels too (critic_optimiser)
    bn = critic_probe(_setup(base_setup, agent={"critic_weight_decay": 0.0}, critic_norm="batch"), updates=60,
                      every=20)
    assert bn.finite.all()
    assert np.all(np.diff(bn.hidden_norm) > 0), bn.hidden_norm  # scale-invariant kernels only grow
    assert not np.allclose(bn.hidden_norm, np.sqrt(2 * (16 + 16)), rtol=1e-3)  # nothing holds it on the sphere


def test_probe_relative_step_matches_a_manual_update(base_setup):
    """lr_hidden at a checkpoint is the mean over its interval of ||W_{t+1} - W_t|| / ||W_t||: with every=1 it is
    the one update's ratio, recomputed here from the states before and after that update."""
    from csil_lite.probes import make_probe_chunk

    setup = _setup(base_setup, critic_norm="batch", critic_head="scalar")
    chunk = make_probe_chunk(setup.agent, setup.demos, 1)
    key = jax.random.PRNGKey(0)
    _, k = jax.random.split(key)
    new, m = chunk(setup.state, k)
    old_k, new_k = hidden_kernels(setup.state.critic.params), hidden_kernels(new.critic.params)
    want = np.sqrt(sum(float(jnp.sum((b - a) ** 2)) for a, b in zip(old_k, new_k))) / np.sqrt(
        sum(float(jnp.sum(a ** 2)) for a in old_k))
    assert float(m["lr_hidden"][0]) == pytest.approx(want, rel=1e-4)
    assert np.isnan(float(m["clipped_frac"][0]))  # a scalar head has no atoms to clip
    trace = critic_probe(setup, updates=1, every=1, seed=0)
    assert trace.lr_hidden[0] == pytest.approx(want, rel=1e-4)


def test_probe_rejects_bad_schedule(base_setup):
    with pytest.raises(ValueError, match="updates % every"):
        critic_probe(base_setup[1], updates=10, every=3)


def test_tangent_projection_leaves_only_steps_orthogonal_per_unit():
    """Every hidden kernel's projected update is orthogonal to each of its fan-in columns (ensemble axis kept), so
    ||W + u||^2 = ||W||^2 + ||u||^2; the output layer's kernel and every bias pass unchanged."""
    import optax

    from csil_lite.probes import hidden_mask, tangent_projection

    critic = make_critic((16, 8), "batch", "categorical", 2, atoms=np.linspace(-5, 0, 11))
    params = critic.module.init(jax.random.PRNGKey(0), jnp.zeros((4, OBS)), jnp.zeros((4, ACT)))["params"]
    leaves, tree = jax.tree.flatten(params)
    updates = jax.tree.unflatten(tree, [jax.random.normal(jax.random.PRNGKey(i), x.shape) for i, x in enumerate(leaves)])
    tx = tangent_projection()
    out, _ = tx.update(updates, tx.init(params), params)
    n_hidden = 0
    for u, v, w, hidden in zip(jax.tree.leaves(updates), jax.tree.leaves(out), jax.tree.leaves(params),
                               jax.tree.leaves(hidden_mask(params))):
        if not hidden:
            np.testing.assert_array_equal(v, u)
            continue
        n_hidden += 1
        assert w.ndim == 3  # (critic, fan-in, unit)
        np.testing.assert_allclose(jnp.sum(v * w, axis=-2), 0.0, atol=1e-5 * float(jnp.max(jnp.abs(w))))
        assert float(jnp.sum((w + v) ** 2)) == pytest.approx(float(jnp.sum(w ** 2) + jnp.sum(v ** 2)), rel=1e-5)
        assert not np.allclose(v, u)  # a random update has a radial part to remove
    assert n_hidden == 2
    with pytest.raises(ValueError, match="params"):
        tx.update(updates, tx.init(params))
    chained = optax.chain(optax.scale_by_adam(), tangent_projection(), optax.scale(-1e-3))  # after Adam, as used
    step, _ = chained.update(updates, chained.init(params), params)
    for v, w, hidden in zip(jax.tree.leaves(step), jax.tree.leaves(params), jax.tree.leaves(hidden_mask(params))):
        if hidden:
            np.testing.assert_allclose(jnp.sum(v * w, axis=-2), 0.0, atol=1e-7)


def test_probe_splits_the_norms_gain_into_radial_and_pythagorean_parts(base_setup):
    """eq-ch6-radial: per checkpoint the radial and tangent sums add up to the squared norm's gain exactly; under
    the tangent projection the radial part is zero; with Adam's momentum on a batch-norm critic it is positive
    (the kernels are pushed outward, AdamP's analysis)."""
    import optax

    from csil_lite.probes import tangent_projection

    setup = _setup(base_setup, agent={"critic_weight_decay": 0.0, "utd": 1}, critic_norm="batch")
    lr = setup.agent.config.critic_lr
    adam = critic_probe(setup, updates=60, every=20)
    norms = np.r_[adam.initial_hidden_norm, adam.hidden_norm] ** 2
    rounding = 8 * np.finfo(np.float32).eps * norms.max()  # the norms themselves are float32 sums
    np.testing.assert_allclose(adam.radial_hidden + adam.tangent_hidden, np.diff(norms), rtol=2e-3, atol=rounding)
    assert adam.radial_hidden.sum() > adam.tangent_hidden.sum() > 0  # momentum: most of the growth is radial
    projected = critic_probe(setup, updates=60, every=20,
                             critic_tx=optax.chain(optax.scale_by_adam(), tangent_projection(), optax.scale(-lr)))
    assert projected.finite.all()
    # zero up to float32 rounding of W + dW (~1e-7 of ||W||^2; Adam without the projection: above the tangent part)
    assert np.all(np.abs(projected.radial_hidden) < 1e-2 * projected.tangent_hidden), projected.radial_hidden
    norms = np.r_[projected.initial_hidden_norm, projected.hidden_norm] ** 2
    np.testing.assert_allclose(np.diff(norms), projected.tangent_hidden, rtol=2e-3, atol=rounding)
