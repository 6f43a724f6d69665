"""Encoders: the component that maps an observation pytree (`csil_lite.obs`) to the feature vector the policy,
critic and reward networks read. Each network holds its own encoder as a submodule, so an encoder with params
(the image encoders to come) is trained by the network that owns it; `Flatten` has none.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class Flatten(nn.Module):
    """Every leaf flattened over its own (non-batch) axes and concatenated, in the pytree's leaf order (a dict's
    sorted keys), as float32; uint8 leaves (images) are scaled to [0, 1]. A single float32 array with one event
    axis (a state vector) passes through unchanged.

    `event_ndims`: the number of non-batch axes of each leaf, in leaf order (() = one per leaf, state vectors).
    """

    event_ndims: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, obs) -> jax.Array:
        leaves = jax.tree.leaves(obs)
        ndims = self.event_ndims or (1,) * len(leaves)
        if len(ndims) != len(leaves):
            raise ValueError(f"Flatten encoder: built for {len(ndims)} observation arrays, got {len(leaves)}")
        parts = []
        for x, n in zip(leaves, ndims):
            lead = x.shape[: x.ndim - n]
            x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
            parts.append(x if n == 1 else x.reshape(*lead, -1))
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


# --- Image encoders (chapter 8) ---------------------------------------------------------------------------------
# An image leaf is a uint8 array [..., H, W, C] (robosuite's camera keys); every other leaf is a vector
# (proprioception, object state). The encoders below turn each image into a feature vector and concatenate the
# vectors after them, in the pytree's leaf order.


def image_keys(spec) -> tuple[str, ...]:
    """The keys of a dict observation spec whose leaves are images: uint8 with three event axes (H, W, C)."""
    if not isinstance(spec, dict):
        return ()
    return tuple(k for k in sorted(spec) if len(spec[k].shape) == 3 and spec[k].dtype == jnp.uint8)


def check_images(obs: dict, keys: tuple[str, ...], shapes: dict[str, tuple[int, ...]]) -> None:
    """A clear error naming the key when an image is not uint8 [..., H, W, C] of the shape the encoder was built for."""
    for k in keys:
        if k not in obs:
            raise ValueError(f"image encoder: observation has no key {k!r} (keys: {sorted(obs)})")
        x = obs[k]
        if x.dtype != jnp.uint8:
            raise ValueError(f"image encoder: {k!r} must be uint8 [..., H, W, C], got dtype {x.dtype}")
        if tuple(x.shape[-3:]) != tuple(shapes[k]):
            raise ValueError(f"image encoder: {k!r} must have H, W, C = {tuple(shapes[k])}, got shape {x.shape}")


class SpatialSoftmax(nn.Module):
    """Each channel's feature map as a distribution over pixels (a softmax with a learned temperature), reduced to
    its expected position: one keypoint (x, y) per channel.

    Convention: x runs along the width (columns) and y along the height (rows), pixel centres at
    linspace(-1, 1, W) and linspace(-1, 1, H); the output [..., 2 C] is (x_0, y_0, x_1, y_1, ...).
    """

    @nn.compact
    def __call__(self, feature_maps: jax.Array) -> jax.Array:
        *lead, h, w, c = feature_maps.shape
        log_temperature = self.param("log_temperature", nn.initializers.zeros, ())
        logits = feature_maps.reshape(*lead, h * w, c) / jnp.exp(log_temperature)
        attention = jax.nn.softmax(logits, axis=-2)  # over pixels, per channel
        ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w), indexing="ij")
        x = jnp.sum(attention * xs.reshape(h * w, 1), axis=-2)
        y = jnp.sum(attention * ys.reshape(h * w, 1), axis=-2)
        return jnp.stack([x, y], axis=-1).reshape(*lead, 2 * c)


class ResidualBlock(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Conv(self.channels, (3, 3))(nn.relu(x))
        y = nn.Conv(self.channels, (3, 3))(nn.relu(y))
        return x + y


class ResNetKeypoints(nn.Module):
    """CSIL++'s camera encoder (the seed paper's Table II): a ResNet with stages of `channels` (each a stride-2
    convolution and a residual block), a 1x1 convolution to `keypoints` maps, and spatial softmax: 2 x keypoints
    features per image."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    keypoints: int = 32

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        x = image.astype(jnp.float32) / 255.0
        for c in self.channels:
            x = nn.Conv(c, (3, 3), strides=(2, 2))(x)
            x = ResidualBlock(c)(x)
        x = nn.Conv(self.keypoints, (1, 1))(nn.relu(x))
        return SpatialSoftmax()(x)


class ImpalaCNN(nn.Module):
    """The original CSIL image encoder's shape (IMPALA): stages of a convolution, 3x3 max-pooling with stride 2 and
    two residual blocks, then a dense layer of `out` units."""

    channels: tuple[int, ...] = (16, 32, 32)
    out: int = 256

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        x = image.astype(jnp.float32) / 255.0
        for c in self.channels:
            x = nn.Conv(c, (3, 3))(x)
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            x = ResidualBlock(c)(ResidualBlock(c)(x))
        x = nn.relu(x).reshape(*x.shape[:-3], -1)
        return nn.relu(nn.Dense(self.out)(x))


class PixelEncoder(nn.Module):
    """Images and vectors to one feature vector: the images through camera encoders, then every vector leaf.

    `per_camera=True` (CSIL++): one `ResNetKeypoints` per camera, each with its own parameters, so one camera's frame
    never changes another's features. `per_camera=False` (the original CSIL): one shared `ImpalaCNN` on the cameras
    stacked along the channel axis (they must share H and W).
    """

    image_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # (key, (H, W, C)) of every image leaf, sorted by key
    per_camera: bool = True
    channels: tuple[int, ...] = (16, 32, 64, 128)
    keypoints: int = 32

    @nn.compact
    def __call__(self, obs) -> jax.Array:
        if not isinstance(obs, dict):
            raise ValueError(f"image encoder: expected a dict observation with image keys, got {type(obs).__name__}")
        keys = tuple(k for k, _ in self.image_shapes)
        check_images(obs, keys, dict(self.image_shapes))
        if self.per_camera:
            parts = [ResNetKeypoints(self.channels, self.keypoints, name=f"camera_{k}")(obs[k]) for k in keys]
        else:
            parts = [ImpalaCNN(name="shared")(jnp.concatenate([obs[k] for k in keys], axis=-1))]
        rest = {k: v for k, v in obs.items() if k not in keys}
        if rest:
            parts.append(Flatten(event_ndims=tuple(1 for _ in jax.tree.leaves(rest)))(rest))
        return jnp.concatenate(parts, axis=-1)


def random_shift(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """DrQ's augmentation: each image [N, H, W, C] padded by `pad` pixels (edge replicated) and cropped back to
    H x W at a random offset, i.e. shifted by up to `pad` pixels in each direction. `pad=0` returns the images."""
    if pad < 0:
        raise ValueError(f"random_shift: pad must be >= 0, got {pad}")
    if pad == 0:
        return images
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


# --- Which gradients train an encoder (`NetworkConfig.encoder_training`) -------------------------------------
# The policy, the critic and the reward (the policy's own copy, refined) each hold an encoder under the name
# "encoder". The reference CSIL code (csil_reference.md section 5.9) trains the encoder in BC, copies its params
# into the critic and the reward, and stops its gradient in the RL phase; the seed paper says nothing else, so
# that is the default here. The alternative trains every copy by its own network's loss from its BC start.


def _is_encoder(path) -> bool:
    return any(getattr(k, "key", None) == "encoder" for k in path)


def encoder_labels(params):
    """'frozen' for every param under a module named 'encoder', 'train' for the rest (for optax.multi_transform)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: "frozen" if _is_encoder(p) else "train", params)


class FrozenAfterBC:
    """BC trains the policy's encoder; the critic starts from a copy of it (every ensemble member); in the RL phase
    (SARSA pretraining and online) no optimiser moves any encoder param: their updates are zero, so XLA drops the
    backward pass through the encoder. With a parameter-free encoder (`Flatten`) it changes nothing.

    Every network then reads the same frozen function of the observation, so the online update encodes each
    batch once (`pre_encode`) instead of once per network, critic copy and critic step."""

    shares_one_encoder = True

    def pre_encode(self, agent, state, batch):
        """(the agent to update with, the batch it reads): with `agent.headless` (the same networks without their
        encoders, `assembly.make_agent`), the batch's observations and next observations replaced by the frozen
        BC encoder's features, computed once; without it, both as given. Book: eq-ch8-shared."""
        if agent.headless is None:
            return agent, batch
        encoder, params = agent.policy.encoder, {"params": state.prior["params"]["encoder"]}
        encode = lambda obs: jax.lax.stop_gradient(encoder.apply(params, obs))  # noqa: E731
        return agent.headless, batch._replace(obs=encode(batch.obs), next_obs=encode(batch.next_obs))

    def pre_encode_demos(self, agent, policy_variables, demos, chunk: int = 256):
        """(the critic SARSA pretraining trains, the demonstrations it reads): with `agent.headless`, its critic
        without the encoder and the demonstrations' observations and next observations replaced by the frozen BC
        encoder's features, each frame encoded once for the whole of SARSA (in chunks of `chunk` frames) instead
        of in every step's batch; without it, `agent.critic` and the demonstrations as given. Book: eq-ch8-shared."""
        if agent.headless is None:
            return agent.critic, demos
        from csil_lite import obs as obs_lib  # noqa: PLC0415

        params = {"params": policy_variables["params"]["encoder"]}
        encode = jax.jit(lambda o: agent.policy.encoder.apply(params, o))
        n = obs_lib.size(demos.obs)

        def features(obs):
            return np.concatenate([np.asarray(encode(obs_lib.take(obs, slice(i, i + chunk))))
                                   for i in range(0, n, chunk)])

        return agent.headless.critic, demos._replace(obs=features(demos.obs), next_obs=features(demos.next_obs))

    def optimiser(self, tx):
        import optax  # noqa: PLC0415

        return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, encoder_labels)

    def share(self, policy_variables: dict, critic_variables: dict) -> dict:
        """`critic_variables` with the policy's encoder params in place of its own (broadcast over an ensemble)."""
        source = policy_variables.get("params", {}).get("encoder")
        params = critic_variables.get("params", {})
        if source is None or "encoder" not in params:
            return critic_variables
        copied = jax.tree.map(lambda c, p: jnp.broadcast_to(p, c.shape).astype(c.dtype), params["encoder"], source)
        return {**critic_variables, "params": {**params, "encoder": copied}}

    def __eq__(self, other) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class EndToEnd(FrozenAfterBC):
    """Every network's encoder trained by its own loss (the policy's by BC, then by the actor loss; the critic's,
    initialised afresh, by the Bellman loss; the reward's by its refinement): three encoders that drift apart."""

    shares_one_encoder = False

    def pre_encode(self, agent, state, batch):
        return agent, batch

    def pre_encode_demos(self, agent, policy_variables, demos, chunk: int = 256):
        return agent.critic, demos

    def optimiser(self, tx):
        return tx

    def share(self, policy_variables: dict, critic_variables: dict) -> dict:
        return critic_variables


ENCODER_TRAINING = {"frozen_after_bc": FrozenAfterBC, "end_to_end": EndToEnd}


# --- Data augmentation (`NetworkConfig.augment`) ----------------------------------------------------------------
# DrQ (Kostrikov et al. 2021) shifts every image of a batch by a few pixels before any network sees it: in BC, and
# in each critic and actor step, observations and next observations independently. A component chosen at
# configuration time; the update calls it on every batch and `NoAugmentation` returns the batch itself.


class NoAugmentation(NamedTuple):
    """Observations as they are (state runs, and image runs without augmentation)."""

    def __call__(self, key: jax.Array, obs):
        del key
        return obs

    def transitions(self, key: jax.Array, batch):
        del key
        return batch


class RandomShift(NamedTuple):
    """DrQ's random shift of `pad` pixels (`random_shift`) on every image leaf of an observation pytree (uint8
    with at least [N, H, W, C]; leading axes such as [utd, B] are kept), each image at its own offset and each
    leaf with its own key; vector leaves pass unchanged."""

    pad: int = 4

    def __call__(self, key: jax.Array, obs):
        leaves, tree = jax.tree.flatten(obs)
        keys = jax.random.split(key, max(len(leaves), 1))
        out = []
        for k, x in zip(keys, leaves):
            if x.dtype != jnp.uint8 or x.ndim < 4:
                out.append(x)
                continue
            flat = x.reshape((-1, *x.shape[-3:]))
            out.append(random_shift(k, flat, self.pad).reshape(x.shape))
        return jax.tree.unflatten(tree, out)

    def transitions(self, key: jax.Array, batch):
        """`batch` (a `Transitions`) with its observations and next observations shifted independently."""
        k_obs, k_next = jax.random.split(key)
        return batch._replace(obs=self(k_obs, batch.obs), next_obs=self(k_next, batch.next_obs))


AUGMENTATIONS = {"none": NoAugmentation, "shift": RandomShift}
