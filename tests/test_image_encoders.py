"""Image encoders (issue 24): spatial softmax's keypoint convention, per-camera separation, the shared encoder,
random-shift bounds, clear errors naming the key, and the encoders as configuration components."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.assembly import make_encoder
from csil_lite.nets.encoders import PixelEncoder, SpatialSoftmax, image_keys, random_shift
from csil_lite.obs import spec_of

H, W = 24, 32


def _obs(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"agentview_image": rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
            "eye_in_hand_image": rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
            "proprio": rng.normal(size=(n, 5)).astype(np.float32)}


@pytest.mark.parametrize("row,col", [(0, 0), (H - 1, W - 1), (5, 20), (12, 3)])
def test_spatial_softmax_finds_one_bright_spot_per_channel(row, col):
    maps = np.zeros((1, H, W, 2), np.float32)
    maps[0, row, col, 0] = 100.0  # channel 0: a spot at (row, col)
    maps[0, H - 1 - row, W - 1 - col, 1] = 100.0  # channel 1: the point reflected through the centre
    sm = SpatialSoftmax()
    params = sm.init(jax.random.PRNGKey(0), maps)
    out = np.asarray(sm.apply(params, maps))[0]
    x, y = -1 + 2 * col / (W - 1), -1 + 2 * row / (H - 1)  # x along the width, y along the height
    np.testing.assert_allclose(out, [x, y, -x, -y], atol=1e-4)


def test_spatial_softmax_of_a_flat_map_is_the_centre():
    sm = SpatialSoftmax()
    maps = jnp.ones((3, H, W, 4))
    out = sm.apply(sm.init(jax.random.PRNGKey(0), maps), maps)
    np.testing.assert_allclose(out, 0.0, atol=1e-6)


def test_per_camera_encoders_keep_cameras_separate():
    obs = _obs()
    enc = make_encoder("resnet_per_camera", spec_of(obs))
    params = enc.init(jax.random.PRNGKey(0), obs)
    assert {"camera_agentview_image", "camera_eye_in_hand_image"} <= set(params["params"])
    f0 = np.asarray(enc.apply(params, obs))
    changed = dict(obs, eye_in_hand_image=_obs(seed=1)["eye_in_hand_image"])
    f1 = np.asarray(enc.apply(params, changed))
    k = 2 * enc.keypoints  # features per camera, cameras in sorted key order, then the proprioception
    assert f0.shape == (2, 2 * k + 5)
    np.testing.assert_array_equal(f0[:, :k], f1[:, :k])  # agentview's features untouched
    assert not np.allclose(f0[:, k:2 * k], f1[:, k:2 * k])
    np.testing.assert_allclose(f0[:, 2 * k:], obs["proprio"], atol=1e-6)


def test_shared_encoder_sees_every_camera():
    obs = _obs()
    enc = make_encoder("impala_shared", spec_of(obs))
    params = enc.init(jax.random.PRNGKey(0), obs)
    assert set(params["params"]) == {"shared"}
    f0 = enc.apply(params, obs)
    f1 = enc.apply(params, dict(obs, agentview_image=_obs(seed=2)["agentview_image"]))
    assert f0.shape == (2, 256 + 5) and not np.allclose(f0[:, :256], f1[:, :256])


def test_wrong_image_shape_or_dtype_names_the_key():
    obs = _obs()
    enc = make_encoder("resnet_per_camera", spec_of(obs))
    params = enc.init(jax.random.PRNGKey(0), obs)
    with pytest.raises(ValueError, match="eye_in_hand_image.*uint8"):
        enc.apply(params, dict(obs, eye_in_hand_image=obs["eye_in_hand_image"].astype(np.float32)))
    with pytest.raises(ValueError, match="agentview_image.*H, W, C"):
        enc.apply(params, dict(obs, agentview_image=np.zeros((2, H, W + 1, 3), np.uint8)))
    with pytest.raises(ValueError, match="needs image observations"):
        make_encoder("resnet_per_camera", spec_of(np.zeros((2, 7), np.float32)))
    assert image_keys(spec_of(obs)) == ("agentview_image", "eye_in_hand_image")


def test_random_shift_stays_within_its_pad_and_is_the_identity_at_zero():
    imgs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (64, 9, 9, 1), dtype=np.uint8))
    assert random_shift(jax.random.PRNGKey(0), imgs, 0) is imgs
    pad = 2
    out = np.asarray(random_shift(jax.random.PRNGKey(1), imgs, pad))
    assert out.shape == imgs.shape and out.dtype == np.uint8
    padded = np.pad(np.asarray(imgs), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    shifts = set()
    for i in range(len(out)):  # every output is a crop of its padded image at an offset in [0, 2 pad]
        hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                if np.array_equal(padded[i, dy:dy + 9, dx:dx + 9], out[i])]
        assert hits, i
        shifts.add(hits[0])
    assert len(shifts) > 5  # the offsets vary across the batch
    with pytest.raises(ValueError, match="pad"):
        random_shift(jax.random.PRNGKey(0), imgs, -1)


def test_the_encoder_is_a_configuration_field():
    from csil_lite.configs import preset
    cfg = preset("preview", nets={"encoder": "resnet_per_camera"})
    assert cfg.nets.encoder == "resnet_per_camera"
    with pytest.raises(ValueError):
        preset("preview", nets={"encoder": "vit"})


def _image_demos(n_episodes=2, t=12, seed=0):
    """Episodes with a uint8 camera [32, 32, 3] (the ResNet's four stride-2 stages leave a 2 x 2 map for the spatial
    softmax; an 8 x 8 frame would leave one pixel, whose keypoint is constant) and a float state giving the action."""
    from test_architecture import _dict_demos

    return _dict_demos(n_episodes, t, seed, image_shape=(32, 32, 3))


def _max_change(a, b) -> float:
    return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("training", ["frozen_after_bc", "end_to_end"])
def test_which_gradients_train_the_encoders(training):
    """Frozen after BC (the reference's design): the critic starts from the BC encoder (in every ensemble member)
    and no RL step, SARSA included, moves any encoder; end to end: the critic's encoder is its own and every
    network's encoder moves with its loss. The rest of each network moves in both."""
    from csil_lite.agents.core import make_update
    from csil_lite.configs import preset
    from csil_lite.loop import prepare
    from csil_lite.replay import ReplayBuffer, mixed_batch

    demos = _image_demos()
    cfg = preset("preview", algo="csilpp", bc_steps=40, critic_pretrain_steps=5, bc_batch=8,
                 agent=dict(n_demo=4, n_online=4),
                 nets=dict(encoder="resnet_per_camera", encoder_training=training, policy_hidden=(16,), features=16,
                           critic_hidden=(16,), critic_atoms=11))
    setup = prepare(cfg, demos, progress=False)
    bc_enc = setup.state.prior["params"]["encoder"]
    critic_enc = setup.state.critic.params["encoder"]
    assert setup.agent.critic.size == 2
    shared = _max_change(jax.tree.map(lambda c: c[1], critic_enc), bc_enc) == 0.0  # ensemble member 1 == BC's
    assert shared == (training == "frozen_after_bc")
    replay = ReplayBuffer(50, demos.obs_spec, 2)
    replay.add(demos.obs, demos.action, demos.reward, demos.next_obs, demos.terminal, demos.last)
    batch = jax.tree.map(jnp.asarray, mixed_batch(demos, replay, 4, 4, np.random.default_rng(0), utd=cfg.agent.utd))
    update, state = make_update(setup.agent), setup.state
    for i in range(2):
        state, _ = update(state, batch, jax.random.PRNGKey(i))
    for name in ("actor", "critic", "reward"):
        before, after = getattr(setup.state, name).params, getattr(state, name).params
        rest = {k: v for k, v in after.items() if k != "encoder"}
        assert _max_change(rest, {k: before[k] for k in rest}) > 0, name
        moved = _max_change(after["encoder"], before["encoder"])
        assert (moved == 0.0) == (training == "frozen_after_bc"), (name, moved)


def test_weight_norm_projects_the_critic_mlp_not_the_encoder():
    from csil_lite.nets.critic import unit_fan_in

    params = {"encoder": {"Conv_0": {"kernel": jnp.full((3, 3, 2, 4), 3.0)}}, "Dense_0": {"kernel": jnp.full((5, 4), 3.0)}}
    out = unit_fan_in(params)
    np.testing.assert_array_equal(out["encoder"]["Conv_0"]["kernel"], params["encoder"]["Conv_0"]["kernel"])
    np.testing.assert_allclose(jnp.linalg.norm(out["Dense_0"]["kernel"], axis=0), 1.0, rtol=1e-6)


def test_image_observations_need_a_robosuite_task_and_frames_in_the_file(tmp_path):
    from csil_lite.configs import preset
    from csil_lite.data.robomimic import DatasetError
    from csil_lite.errors import UserError
    from csil_lite.loop import load_demos, train

    with pytest.raises(UserError, match="toy task"):
        train(preset("preview", task="pointmass-reach", obs="image"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    from csil_lite.data.robomimic import Episode, write_dataset

    t = 5
    ep = Episode(actions=np.zeros((t, 7), np.float32), rewards=np.zeros(t, np.float32),
                 dones=np.zeros(t, np.int64),
                 obs={k: np.zeros((t, d), np.float32) for k, d in (("robot0_eef_pos", 3), ("robot0_eef_quat", 4),
                                                                   ("robot0_gripper_qpos", 2), ("object", 10))},
                 next_obs={k: np.zeros((t, d), np.float32) for k, d in (("robot0_eef_pos", 3), ("robot0_eef_quat", 4),
                                                                        ("robot0_gripper_qpos", 2), ("object", 10))})
    write_dataset(tmp_path / "states.hdf5", [ep], {"env_name": "Lift", "type": 1, "env_kwargs": {}})
    cfg = preset("preview", algo="csilpp", task="lift", obs="image", demos_path=str(tmp_path / "states.hdf5"),
                 num_demos=1)
    with pytest.raises(DatasetError, match="agentview_image.*csil-lite demos render"):
        load_demos(cfg)


def test_unrolled_chunks_compute_what_the_scan_computes():
    """Image training steps on a CPU run as a Python loop of jitted steps (`obs.unroll_loops`); the numbers are the
    scan's up to float association."""
    import optax

    from csil_lite import obs as obs_lib
    from csil_lite.assembly import make_policy
    from csil_lite.configs import preset
    from csil_lite.pretrain.bc import make_bc_step, scan_in_chunks

    demos = _image_demos(n_episodes=1, t=16)
    assert obs_lib.has_images(demos.obs) and not obs_lib.has_images(demos.obs["state"])
    assert obs_lib.unroll_loops(demos.obs) == (jax.default_backend() == "cpu")
    cfg = preset("preview", algo="csilpp", nets=dict(encoder="resnet_per_camera", policy_hidden=(16,), features=16))
    policy = make_policy(cfg.nets, 2, demos.obs_spec)
    params = policy.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[:1], demos.obs))
    opt = optax.adam(1e-3)
    step = make_bc_step(policy, opt, 4)
    data = (jax.tree.map(jnp.asarray, demos.obs), jnp.asarray(demos.action))
    runs = [scan_in_chunks(step, (params, opt.init(params)), jax.random.PRNGKey(1), 6, chunk=3, desc="", progress=False,
                           data=data, unrolled=u) for u in (False, True)]
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-4, atol=1e-5)
    assert _max_change(runs[0][0][0], runs[1][0][0]) < 1e-3


def test_random_shift_component_shifts_every_image_leaf_and_nothing_else():
    """DrQ as a component: every uint8 image leaf of a pytree with leading [utd, B] axes is shifted within the pad
    (each image its own offset), vector leaves pass unchanged, observations and next observations of a batch get
    independent shifts, pad 0 and NoAugmentation are the identity."""
    from csil_lite.data.transitions import Transitions
    from csil_lite.nets.encoders import AUGMENTATIONS, NoAugmentation, RandomShift

    assert set(AUGMENTATIONS) == {"none", "shift"}
    pad, n = 2, 6
    obs = jax.tree.map(lambda x: jnp.asarray(x).reshape((2, 3, *x.shape[1:])), _obs(n=n))  # [utd 2, B 3, ...]
    out = RandomShift(pad)(jax.random.PRNGKey(0), obs)
    np.testing.assert_array_equal(out["proprio"], obs["proprio"])
    for k in ("agentview_image", "eye_in_hand_image"):
        x, y = np.asarray(obs[k]).reshape(n, H, W, 3), np.asarray(out[k]).reshape(n, H, W, 3)
        assert y.dtype == np.uint8 and out[k].shape == obs[k].shape
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        for i in range(n):
            assert any(np.array_equal(padded[i, dy:dy + H, dx:dx + W], y[i])
                       for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)), (k, i)
        assert not np.array_equal(x, y)
    zero = RandomShift(0)(jax.random.PRNGKey(0), obs)
    for a, b in zip(jax.tree.leaves(zero), jax.tree.leaves(obs)):
        np.testing.assert_array_equal(a, b)
    act = jnp.zeros((2, 3, 2))
    batch = Transitions(obs, act, jnp.zeros((2, 3)), obs, act, jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    shifted = RandomShift(pad).transitions(jax.random.PRNGKey(1), batch)
    assert not np.array_equal(shifted.obs["agentview_image"], shifted.next_obs["agentview_image"])
    np.testing.assert_array_equal(shifted.action, batch.action)
    assert NoAugmentation().transitions(jax.random.PRNGKey(1), batch) is batch


def test_augmentation_is_a_configuration_field_for_images_only():
    from csil_lite.assembly import augmentation_of
    from csil_lite.configs import preset
    from csil_lite.errors import UserError
    from csil_lite.nets.encoders import NoAugmentation, RandomShift

    cfg = preset("preview", algo="csilpp", task="lift", obs="image", nets={"augment": "shift", "augment_pad": 3})
    assert augmentation_of(cfg.nets) == RandomShift(3)
    assert augmentation_of(preset("preview", algo="csilpp").nets) == NoAugmentation()
    with pytest.raises(UserError, match="obs='image'"):
        preset("preview", algo="csilpp", nets={"augment": "shift"})
    with pytest.raises(ValueError, match="augment_pad"):
        preset("preview", algo="csilpp", task="lift", obs="image", nets={"augment": "shift", "augment_pad": -1})


def test_the_update_and_bc_see_the_shifted_images():
    """With nets.augment='shift' the online update is the unaugmented update of the batch shifted by the agent's
    component under its own key (fold_in(key, 1)): the wiring, not just the function. BC's minibatches are shifted
    too: its losses differ from unaugmented BC's from the first step on."""
    from csil_lite.agents.core import make_update
    from csil_lite.assembly import augmentation_of
    from csil_lite.configs import preset
    from csil_lite.loop import prepare
    from csil_lite.pretrain.bc import train_bc
    from csil_lite.replay import ReplayBuffer, mixed_batch

    demos = _image_demos()
    nets = dict(encoder="resnet_per_camera", policy_hidden=(16,), features=16, critic_hidden=(16,), critic_atoms=11,
                augment="shift", augment_pad=2)
    cfg = preset("preview", algo="csilpp", task="lift", obs="image", bc_steps=20, critic_pretrain_steps=0,
                 bc_batch=8, agent=dict(n_demo=4, n_online=4), nets=nets)
    setup = prepare(cfg, demos, progress=False)
    assert setup.agent.augment == augmentation_of(cfg.nets)
    replay = ReplayBuffer(50, demos.obs_spec, 2)
    replay.add(demos.obs, demos.action, demos.reward, demos.next_obs, demos.terminal, demos.last)
    batch = jax.tree.map(jnp.asarray, mixed_batch(demos, replay, 4, 4, np.random.default_rng(0), utd=cfg.agent.utd))
    key = jax.random.PRNGKey(3)
    plain = setup.agent._replace(augment=augmentation_of(preset("preview", algo="csilpp").nets))
    got, _ = make_update(setup.agent)(setup.state, batch, key)
    pre = setup.agent.augment.transitions(jax.random.fold_in(key, 1), batch)
    want, _ = make_update(plain)(setup.state, pre, key)
    assert _max_change(got.critic.params, want.critic.params) < 1e-5
    unshifted, _ = make_update(plain)(setup.state, batch, key)
    assert _max_change(got.critic.params, unshifted.critic.params) > 1e-4
    kw = dict(steps=3, seed=0, batch_size=8, progress=False, chunk=3)
    shifted_bc = train_bc(setup.agent.policy, demos.obs, demos.action, augment=setup.agent.augment, **kw)
    plain_bc = train_bc(setup.agent.policy, demos.obs, demos.action, **kw)
    assert abs(float(shifted_bc.losses[0]) - float(plain_bc.losses[0])) > 1e-6


def test_one_frozen_encoder_is_applied_once_per_update_with_the_same_result():
    """Frozen after BC, every network reads the same frozen encoder: the update encodes the batch once and runs
    the networks without their encoders (`Agent.headless`, `FrozenAfterBC.pre_encode`). Its new state equals the
    update that encodes inside every network (headless=None), and it costs far fewer FLOPs; end to end there is no
    headless twin."""
    from csil_lite.agents.core import make_update
    from csil_lite.agents.core import update as one_update
    from csil_lite.configs import preset
    from csil_lite.loop import prepare
    from csil_lite.perf import xla_flops
    from csil_lite.replay import ReplayBuffer, mixed_batch

    demos = _image_demos()
    nets = dict(encoder="resnet_per_camera", policy_hidden=(16,), features=16, critic_hidden=(16,), critic_atoms=11)
    cfg = preset("preview", algo="csilpp", bc_steps=20, critic_pretrain_steps=0, bc_batch=8,
                 agent=dict(n_demo=4, n_online=4), nets=nets)
    setup = prepare(cfg, demos, progress=False)
    assert setup.agent.headless is not None and setup.agent.headless.policy.encoder is None
    assert setup.agent.headless.critic.head == setup.agent.critic.head  # the resolved support travels with it
    replay = ReplayBuffer(50, demos.obs_spec, 2)
    replay.add(demos.obs, demos.action, demos.reward, demos.next_obs, demos.terminal, demos.last)
    batch = jax.tree.map(jnp.asarray, mixed_batch(demos, replay, 4, 4, np.random.default_rng(0), utd=cfg.agent.utd))
    key = jax.random.PRNGKey(5)
    inside = setup.agent._replace(headless=None)
    once, m_once = make_update(setup.agent)(setup.state, batch, key)
    every, m_every = make_update(inside)(setup.state, batch, key)
    for k in m_every:
        np.testing.assert_allclose(m_once[k], m_every[k], rtol=1e-3, atol=1e-5, err_msg=k)
    # Adam moves a param whose gradient is ~0 (a batch-norm shift) by ~lr in the direction of its float noise, so
    # two float-different routes may differ there by up to one lr per step; every other param agrees closely
    steps = cfg.agent.utd
    for name in ("actor", "critic", "reward"):
        a, b = getattr(once, name).params, getattr(every, name).params
        assert _max_change(a, b) < 2 * steps * cfg.agent.critic_lr, name
        assert _max_change(a, getattr(setup.state, name).params) > 1e-6, name  # and the update did move them
    q = lambda st: setup.agent.critic.value(st.critic.variables, jax.tree.map(lambda x: x[0], batch.obs),  # noqa: E731
                                            batch.action[0])
    np.testing.assert_allclose(q(once), q(every), rtol=1e-3, atol=1e-3)
    flops_once = xla_flops(lambda s, b, k: one_update(setup.agent, s, b, k), setup.state, batch, key)
    flops_every = xla_flops(lambda s, b, k: one_update(inside, s, b, k), setup.state, batch, key)
    assert flops_once < 0.5 * flops_every, (flops_once, flops_every)
    end = preset("preview", algo="csilpp", bc_steps=20, critic_pretrain_steps=0, bc_batch=8,
                 agent=dict(n_demo=4, n_online=4), nets={**nets, "encoder_training": "end_to_end"})
    from csil_lite.assembly import make_agent

    assert make_agent(end, demos.obs_spec, 2).headless is None
    assert make_agent(preset("preview", algo="csilpp"), demos.obs_spec["state"], 2).headless is None  # states


def test_sarsa_pretraining_reads_the_demonstrations_encoded_once():
    """With one frozen encoder, SARSA pretraining trains the headless critic on the demonstrations encoded once
    (`FrozenAfterBC.pre_encode_demos`): its critic equals SARSA encoding every batch inside the critic (to float
    noise: Adam's per-step lr on near-zero-gradient batch-norm shifts), its encoder params stay the BC encoder's,
    and end to end the demonstrations are not touched."""
    from csil_lite.configs import preset
    from csil_lite.loop import prepare
    from csil_lite.nets.encoders import EndToEnd
    from csil_lite.pretrain.critic import pretrain_critic

    demos = _image_demos()
    nets = dict(encoder="resnet_per_camera", policy_hidden=(16,), features=16, critic_hidden=(16,), critic_atoms=11)
    cfg = preset("preview", algo="csilpp", bc_steps=20, critic_pretrain_steps=0, bc_batch=8,
                 agent=dict(n_demo=4, n_online=4), nets=nets)
    setup = prepare(cfg, demos, progress=False)
    agent, rule = setup.agent, setup.agent.encoder_training
    critic, encoded = rule.pre_encode_demos(agent, setup.bc_params, setup.demos, chunk=5)  # chunks cut episodes
    assert critic is agent.headless.critic and encoded.obs.shape == (setup.demos.size, encoded.obs.shape[1])
    assert encoded.obs.ndim == 2 and encoded.next_obs.shape == encoded.obs.shape
    rewards = np.linspace(-1.0, 0.0, setup.demos.size, dtype=np.float32)
    kw = dict(steps=6, gamma=0.99, tau=0.05, learning_rate=1e-3, batch_size=8, grad_penalty=0.0, seed=2,
              chunk=6, progress=False, optimiser=rule.optimiser)
    once = pretrain_critic(critic, setup.critic_params, encoded, rewards, **kw)
    inside = pretrain_critic(agent.critic, setup.critic_params, setup.demos, rewards, **kw)
    np.testing.assert_allclose(once.losses, inside.losses, rtol=1e-3, atol=1e-5)
    assert _max_change(once.params["params"], inside.params["params"]) < 2 * 6 * 1e-3
    assert _max_change(once.params["params"], setup.critic_params["params"]) > 1e-4  # SARSA did move the critic
    enc = once.params["params"]["encoder"]
    assert _max_change(enc, setup.critic_params["params"]["encoder"]) == 0.0  # frozen
    assert EndToEnd().pre_encode_demos(agent, setup.bc_params, setup.demos) == (agent.critic, setup.demos)
