"""Behaviour cloning of a tanh-Gaussian policy with the reference's "faithful" loss.

faithful = MSE(tanh(mean), a) + NLL with stop-gradients on the mean and on the std's features, so the mean is fit
by regression alone (a wide std cannot excuse a bad mean) and the NLL calibrates only the variance head.
Training runs as jitted chunks of `lax.scan` steps with a progress bar between chunks.

Saturated actions. A tanh-Gaussian puts an action at exactly +-1 at latent infinity; the log-density clips it
at +-`THRESHOLD` (0.999, latent 3.8) and scores it by the latent tail mass beyond. The faithful loss fits the
mean in *action* space, where the gradient of (tanh mu - 1)^2 vanishes long before mu reaches 3.8 (on chapter
5's toy task the mean of the saturated dimensions stops at a median latent 1.65), and then the NLL, which may
change only the std, can raise that tail mass only by widening the std: it goes to the ceiling sqrt(0.75) on
every demonstration, and with it the contrast between on- and off-data uncertainty is gone (measured there:
median std 0.866 on the demonstrations, 0.865 around them). `action_margin` clips the BC targets to +-(1 -
margin), a point the mean can reach (atanh 0.9 = 1.47 for margin 0.1), so the NLL sees a latent residual
instead of a tail and calibrates the std to it. The reference uses no margin (0).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from csil_lite import obs as obs_lib
from csil_lite.checkpoints import Checkpoints
from csil_lite.distributions import tanh_normal
from csil_lite.nets.encoders import NoAugmentation

Loss = Literal["faithful", "nll", "mse"]


def clip_actions(actions, margin: float):
    """Actions clipped to [-(1 - margin), 1 - margin]; `margin=0` returns them unchanged."""
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"action margin must lie in [0, 1), got {margin}")
    return actions if margin == 0.0 else np.clip(actions, -(1.0 - margin), 1.0 - margin).astype(np.float32)


class BCResult(NamedTuple):
    params: dict
    losses: np.ndarray  # [steps] training loss per step


def bc_loss(
    policy: nn.Module, params, obs, actions: jax.Array, kind: Loss = "faithful"
) -> tuple[jax.Array, dict]:
    """BC loss on a batch (`obs` an observation pytree); returns (loss, metrics)."""
    if obs_lib.size(obs) != actions.shape[0]:
        raise ValueError(f"bc_loss: {obs_lib.size(obs)} observations but {actions.shape[0]} actions")
    mean, std = policy.apply(params, obs, detach_std_features=(kind == "faithful"))
    mse = jnp.mean(jnp.square(jnp.tanh(mean) - actions))
    if kind == "faithful":
        nll = -jnp.mean(tanh_normal(jax.lax.stop_gradient(mean), std).log_prob(actions))
        loss = mse + nll
    elif kind == "nll":
        nll = -jnp.mean(tanh_normal(mean, std).log_prob(actions))
        loss = nll
    elif kind == "mse":
        nll = -jnp.mean(tanh_normal(mean, std).log_prob(actions))
        loss = mse
    else:
        raise ValueError(f"unknown BC loss {kind!r}; choose 'faithful', 'nll' or 'mse'")
    return loss, {"mse": mse, "nll": nll, "std": jnp.mean(std)}


def scan_in_chunks(step: Callable, carry, key: jax.Array, steps: int, *, chunk: int, desc: str, progress: bool,
                   data=(), checkpoint_dir=None, on_chunk: Callable[[int, Any], None] | None = None,
                   unrolled: bool = False):
    """Run `steps` iterations of `step(carry, key, data) -> (carry, loss)` as jitted `lax.scan` chunks.

    Chunking lets a progress bar advance between compiled blocks; returns (carry, per-step losses). `data` (a
    pytree the steps read, e.g. the dataset) is an argument of the compiled chunk, not part of the carry.
    `checkpoint_dir`: after every chunk the carry, the key and the losses so far are saved there
    (`checkpoints.Checkpoints`); a later call with the same directory resumes from the newest, so a killed run
    continues where it stopped and ends with the same numbers. `on_chunk(steps_done, carry)` is called after every
    chunk (e.g. to measure the model during training). `unrolled`: run each chunk as a Python loop of one jitted
    step instead of a `lax.scan` (the same numbers up to float association): XLA's CPU backend runs convolutions
    inside a loop about 27x slower (measured: 5.3 s against 0.20 s per BC step of 64 two-camera 64 x 64 frames),
    so image encoders on a CPU take this path (`unroll_loops`).
    """
    if unrolled:  # one jitted step at a time: XLA's CPU backend runs convolutions inside a loop far slower
        one = jax.jit(step)

        def run(c, keys, d):
            out = []
            for k in keys:
                c, loss = one(c, k, d)
                out.append(loss)
            return c, jnp.stack(out)
    else:
        run = jax.jit(lambda c, keys, d: jax.lax.scan(lambda cc, k: step(cc, k, d), c, keys))
    losses, done = [], 0
    ckpt = None if checkpoint_dir is None else Checkpoints(checkpoint_dir)
    if ckpt is not None and ckpt.latest() is not None:
        like = {"carry": carry, "key": key, "losses": np.zeros(ckpt.latest(), np.float32)}
        saved, _ = ckpt.restore(like)
        carry, key, losses, done = saved["carry"], jnp.asarray(saved["key"]), [np.asarray(saved["losses"])], ckpt.latest()
    with tqdm(total=steps, initial=done, desc=desc, disable=not progress, leave=False) as bar:
        while done < steps:
            n = min(chunk, steps - done)
            key, sub = jax.random.split(key)
            carry, chunk_losses = run(carry, jax.random.split(sub, n), data)
            losses.append(np.asarray(chunk_losses))
            done += n
            bar.update(n)
            bar.set_postfix(loss=f"{float(chunk_losses[-1]):.3f}")
            if ckpt is not None:
                ckpt.save(done, {"carry": carry, "key": key, "losses": np.concatenate(losses)})
            if on_chunk is not None:
                on_chunk(done, carry)
    if ckpt is not None:
        ckpt.close()
    return carry, (np.concatenate(losses) if losses else np.zeros(0))


def make_bc_step(
    policy: nn.Module, optimizer: optax.GradientTransformation, batch_size: int, kind: Loss = "faithful",
    augment: Callable = NoAugmentation(),
) -> Callable:
    """One SGD step on a uniformly sampled (with replacement) minibatch of the dataset `data` = (obs, actions), its
    observations through `augment(key, obs)` first (`nets.encoders.AUGMENTATIONS`)."""

    def step(carry, key, data):
        params, opt_state = carry
        obs, actions = data
        idx = jax.random.randint(key, (batch_size,), 0, actions.shape[0])
        batch_obs = augment(jax.random.fold_in(key, 1), obs_lib.take(obs, idx))
        (loss, _), grads = jax.value_and_grad(bc_loss, argnums=1, has_aux=True)(
            policy, params, batch_obs, actions[idx], kind
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def train_bc(
    policy: nn.Module,
    obs: np.ndarray,
    actions: np.ndarray,
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    loss: Loss = "faithful",
    action_margin: float = 0.0,
    params=None,
    chunk: int = 500,
    progress: bool = True,
    checkpoint_dir=None,
    on_chunk: Callable[[int, Any], None] | None = None,
    augment: Callable = NoAugmentation(),
) -> BCResult:
    """Fit `policy` to (obs, actions) with Adam; returns the params and the per-step loss curve.

    Actions must lie in [-1, 1] (the tanh squashing cannot represent anything else). `action_margin` > 0 fits
    them clipped to +-(1 - action_margin) (see the module docstring: saturated targets drive the std to its
    ceiling). `obs` is an observation pytree (`csil_lite.obs`; float leaves become float32, uint8 images stay
    uint8). `checkpoint_dir`: checkpoint every chunk there and resume from it (`scan_in_chunks`). `on_chunk(steps
    done, params)`: called after every `chunk` steps. `augment`: what every minibatch's observations go through
    (DrQ's `RandomShift` for images; default none).
    """
    obs = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if np.asarray(x).dtype.kind == "f" else jnp.asarray(x),
                       obs)
    actions = jnp.asarray(actions, jnp.float32)
    if actions.ndim != 2 or any(np.ndim(x) < 2 or x.shape[0] != actions.shape[0] for x in jax.tree.leaves(obs)):
        raise ValueError(f"train_bc: expected obs [N, ...] and actions [N, act_dim], got {obs_lib.shapes(obs)}, "
                         f"{actions.shape}")
    if actions.shape[0] == 0:
        raise ValueError("train_bc: empty dataset")
    if float(jnp.max(jnp.abs(actions))) > 1.0 + 1e-6:
        raise ValueError(f"train_bc: actions must lie in [-1, 1], max |a| = {float(jnp.max(jnp.abs(actions))):.4f}")
    actions = jnp.asarray(clip_actions(np.asarray(actions), action_margin))
    if steps < 1 or batch_size < 1 or learning_rate <= 0:
        raise ValueError(f"train_bc: need steps>=1, batch_size>=1, learning_rate>0 (got {steps}, {batch_size}, {learning_rate})")
    key = jax.random.PRNGKey(seed)
    init_key, key = jax.random.split(key)
    if params is None:
        params = policy.init(init_key, obs_lib.take(obs, slice(0, 1)))
    optimizer = optax.adam(learning_rate)
    step = make_bc_step(policy, optimizer, batch_size, loss, augment)

    carry, losses = scan_in_chunks(step, (params, optimizer.init(params)), key, steps, chunk=chunk,
                                   desc=f"BC ({loss})", progress=progress, data=(obs, actions),
                                   checkpoint_dir=checkpoint_dir, unrolled=obs_lib.unroll_loops(obs),
                                   on_chunk=None if on_chunk is None else lambda done, c: on_chunk(done, c[0]))
    return BCResult(params=carry[0], losses=losses)
