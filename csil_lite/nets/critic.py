"""Critic networks: modules that map (s, a) to a raw output (a head, `nets.heads`, says what it means).

The critic *component* (module, head, passes, ensemble, penalty, support) is `agents.critic.Critic`.

The CSIL default is one LayerNorm MLP (not twin critics): Linear -> LayerNorm -> tanh -> Linear -> ELU -> Linear(1),
with a scalar head. Everything that uses a critic (the Bellman loss, the gradient penalty, the actor loss, SARSA
pretraining) goes through the head's protocol:

- `head.value(out)`: the Q-value(s) the output stands for, [batch];
- `head.loss(out, target)`: the regression loss of the output towards a Bellman target (a scalar here; the
  categorical head takes a projected distribution instead).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from csil_lite import obs as obs_lib
from csil_lite.nets.layers import MLP


def critic_input(encoder: nn.Module | None, obs, action: jax.Array) -> jax.Array:
    """[features(s), a]: the encoder's features of the observation pytree next to the action."""
    features = obs if encoder is None else encoder(obs)
    if features.shape[:-1] != action.shape[:-1]:
        raise ValueError(f"critic: obs batch shape {features.shape[:-1]} != action batch shape {action.shape[:-1]}")
    return jnp.concatenate([features, action], axis=-1)


class LayerNormCritic(nn.Module):
    hidden: Sequence[int] = (256, 256)
    outputs: int = 1
    encoder: nn.Module | None = None  # observation pytree -> features (`nets.encoders`); None: obs are features

    @nn.compact
    def __call__(self, obs, action: jax.Array, train: bool = False) -> jax.Array:
        """`train` is accepted for a common call signature with `NormalisedCritic`; LayerNorm has no mode."""
        x = critic_input(self.encoder, obs, action)
        out = MLP((*self.hidden, self.outputs), layer_norm=True)(x)
        return out[..., 0] if self.outputs == 1 else out




NORMALISATIONS = ("none", "layer", "batch", "batch_weight")


class NormalisedCritic(nn.Module):
    """A ReLU MLP critic with a chosen normalisation (CSIL++ ablations), for `outputs` logits or one value.

    'batch' / 'batch_weight' follow XQC: BN on the raw [s, a] input, then [Dense (no bias) -> BN -> ReLU] per hidden
    layer (flax momentum 0.99, epsilon 1e-3), then the output Dense. `train=True` normalises with the batch's own
    statistics (call `apply` with `mutable=["batch_stats"]`); `train=False` with the running ones. 'batch_weight'
    is the same network whose Dense kernels are projected to unit fan-in norm after every optimiser step
    (`unit_fan_in`): the module is identical, the projection is the training rule's. 'layer': [Dense -> LayerNorm
    -> ReLU]; 'none': [Dense -> ReLU].
    """

    hidden: Sequence[int] = (256, 256)
    norm: str = "batch_weight"
    outputs: int = 1
    encoder: nn.Module | None = None  # observation pytree -> features (`nets.encoders`); None: obs are features

    @nn.compact
    def __call__(self, obs, action: jax.Array, train: bool = False) -> jax.Array:
        if self.norm not in NORMALISATIONS:
            raise ValueError(f"NormalisedCritic.norm must be one of {NORMALISATIONS}, got {self.norm!r}")
        batch_norm = self.norm in ("batch", "batch_weight")
        bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3)  # noqa: E731
        x = critic_input(self.encoder, obs, action)
        if batch_norm:
            x = bn()(x)
        for size in self.hidden:
            x = nn.Dense(size, use_bias=not batch_norm)(x)
            if batch_norm:
                x = bn()(x)
            elif self.norm == "layer":
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        out = nn.Dense(self.outputs)(x)
        return out[..., 0] if self.outputs == 1 else out


def critic_ensemble(module: type[nn.Module], size: int, **kwargs) -> nn.Module:
    """`size` independent copies of `module` in one module (nn.vmap): params and batch statistics stacked on axis 0,
    the inputs shared, the outputs stacked on a leading ensemble axis.

    Pass `train` positionally (`apply(v, obs, action, True, ...)`): flax's vmap drops keyword arguments.
    """
    if size < 1:
        raise ValueError(f"critic ensemble size must be >= 1, got {size}")
    ensemble = nn.vmap(module, in_axes=None, out_axes=0, axis_size=size,
                       variable_axes={"params": 0, "batch_stats": 0}, split_rngs={"params": True})
    return ensemble(**kwargs)


def unit_fan_in(params):
    """Weight normalisation as a projection: every Dense kernel [..., in, out] rescaled so that each output unit's
    fan-in vector (axis -2) has unit L2 norm. Biases and normalisation parameters are left alone; a leading
    ensemble axis is fine (the norm is still over axis -2). An image encoder's params (under 'encoder') are not the
    critic MLP's and are left alone too. Book: eq-ch6-wn."""

    def project(path, leaf):
        name = getattr(path[-1], "key", None)
        if name == "kernel" and leaf.ndim >= 2 and not any(getattr(k, "key", None) == "encoder" for k in path):
            return leaf / jnp.linalg.norm(leaf, axis=-2, keepdims=True)
        return leaf

    return jax.tree_util.tree_map_with_path(project, params)


def joint_forward(module: nn.Module, variables: dict, obs, action, next_obs, next_action, *, train: bool = True):
    """One pass over the joint batch [s; s'], [a; a'] (CrossQ/XQC), split back into (out(s, a), out(s', a')).

    In train mode BN normalises both halves with the statistics of the mixture (separate passes would give each
    half its own, on inconsistent scales); returns (out, out_next, new batch_stats).
    Book: eq-ch6-joint.
    """
    n = action.shape[0]
    out, updates = module.apply(variables, obs_lib.concat([obs, next_obs]), jnp.concatenate([action, next_action]),
                                train, mutable=["batch_stats"])
    split = (lambda x: (x[..., :n, :], x[..., n:, :])) if out.ndim >= 2 and module_outputs(module) > 1 \
        else (lambda x: (x[..., :n], x[..., n:]))
    first, second = split(out)
    return first, second, updates.get("batch_stats", {})


def module_outputs(module: nn.Module) -> int:
    return int(getattr(module, "outputs", 1))
