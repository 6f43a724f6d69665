"""Training state: one `TrainState` per network, and the agent's state made of them.

`TrainState` follows flax's `TrainState` (and SBX's `RLTrainState`, which adds target params): the optimiser step
is written once, in `apply_gradients`, and every network carries the same four pytrees whether it uses them or
not. `target_params` is `{}` for a network without a target copy (the actor, the reward network) and
`batch_stats` is `{}` for a network without batch normalisation, so no code path branches on either.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

Params = Any


def _copy(tree: Params) -> Params:
    """Same values in distinct buffers (so donating or updating one copy never aliases another)."""
    return jax.tree.map(jnp.array, tree)


class TrainState(struct.PyTreeNode):
    """Params, optimiser state, target params and batch statistics of one network; `tx` is static."""

    params: Params
    opt_state: optax.OptState
    target_params: Params
    batch_stats: Params
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, variables: dict, tx: optax.GradientTransformation, *, target: bool = False) -> "TrainState":
        """From a flax variable dict ({"params": ..., optionally "batch_stats": ...}).

        `target=True` keeps a target copy of the params for Polyak averaging (`update_target`).
        """
        if "params" not in variables:
            raise ValueError(f"TrainState.create expects flax variables with a 'params' collection, got "
                             f"{sorted(variables)}")
        unknown = set(variables) - {"params", "batch_stats"}
        if unknown:
            raise ValueError(f"TrainState.create: unsupported variable collections {sorted(unknown)}")
        params = _copy(variables["params"])
        return cls(params=params, opt_state=tx.init(params),
                   target_params=_copy(params) if target else {},
                   batch_stats=_copy(variables.get("batch_stats", {})), tx=tx)

    @property
    def variables(self) -> dict:
        """The variables to `module.apply` with the online params."""
        return {"params": self.params, "batch_stats": self.batch_stats}

    @property
    def target_variables(self) -> dict:
        """The variables to `module.apply` with the target params (and the online batch statistics)."""
        return {"params": self.target_params, "batch_stats": self.batch_stats}

    def apply_gradients(self, grads: Params, **changes: Any) -> "TrainState":
        """One optimiser step on `params`; `changes` replace other fields (e.g. new `batch_stats`)."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state, **changes)

    def update_target(self, tau: float) -> "TrainState":
        """Polyak averaging: target <- tau * params + (1 - tau) * target."""
        return self.replace(target_params=optax.incremental_update(self.params, self.target_params, tau))


class AgentState(NamedTuple):
    """Everything the online update changes, as one pytree.

    `reward` is the refinable copy of the BC policy that defines the coherent reward; its params are `{}` when
    the reward comes from the environment. `prior` holds the frozen BC params (the reference of the KL when the
    prior is the BC policy, and what `prepare(bc_from=...)` reuses). `step` counts actor updates.
    `return_scale` multiplies the critic's rewards (1 unless the rewards are normalised: the loop sets it from
    the agent's `ReturnNormalisation` at every env step).
    """

    actor: TrainState
    critic: TrainState
    reward: TrainState
    prior: Params
    step: jax.Array
    return_scale: jax.Array = 1.0
