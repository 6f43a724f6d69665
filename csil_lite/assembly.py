"""From a configuration to components: the one place where the configuration's strings are read.

`make_agent(cfg, obs_spec, action_dim)` turns a `RunConfig` (its `agent` and `nets` sections) into an
`agents.Agent`: the encoder, the policy network, the critic component (network x head x ensemble x passes x
projection x support), the KL's prior, the KL estimator and the reward source. Every choice is a lookup in one
of the tables below, so a new variant is a new entry, never an `if` in the update, the pretraining or the loop.
What the components compute from data (the coherent reward's shift, a categorical support) they resolve
themselves (`Agent.resolve`).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import optax

from csil_lite import obs as obs_lib
from csil_lite.agents.components import (
    BCPrior,
    CoherentReward,
    EnvironmentReward,
    ExactKL,
    MonteCarloKL,
    NoNormalisation,
    RefinePerCriticStep,
    RefinePerUpdate,
    ReturnNormalisation,
    SparseReward,
    UniformPrior,
)
from csil_lite.agents.core import Agent
from csil_lite.agents.critic import Critic, QuantileSupport
from csil_lite.base.compose import BaseEdge, Ensemble, NoBase, Residual
from csil_lite.config import AgentConfig, BaseConfig, NetworkConfig, RunConfig
from csil_lite.nets.critic import NORMALISATIONS, LayerNormCritic, NormalisedCritic, critic_ensemble
from csil_lite.nets.encoders import (AUGMENTATIONS, ENCODER_TRAINING, EndToEnd, Flatten, FrozenAfterBC, PixelEncoder,
                                     image_keys)
from csil_lite.nets.heads import CategoricalHead, ScalarHead
from csil_lite.nets.policy import HetStatPolicy, MLPPolicy

def _pixel_encoder(per_camera: bool) -> Callable[[Any], nn.Module]:
    def make(spec) -> nn.Module:
        keys = image_keys(spec)
        if not keys:
            raise ValueError("an image encoder needs image observations (uint8 [H, W, C] leaves of a dict "
                             f"observation); this task's observations are {spec}")
        return PixelEncoder(image_shapes=tuple((k, spec[k].shape) for k in keys), per_camera=per_camera)
    return make


ENCODERS: dict[str, Callable[[Any], nn.Module]] = {
    "flatten": lambda spec: Flatten(event_ndims=tuple(len(s.shape) for s in
                                                      jax.tree.leaves(spec, is_leaf=obs_lib.is_spec))),
    "resnet_per_camera": _pixel_encoder(per_camera=True),  # CSIL++ (Table II): ResNet + spatial softmax per camera
    "impala_shared": _pixel_encoder(per_camera=False),  # the original CSIL: one IMPALA CNN over all cameras
}
PARAMETER_FREE_ENCODERS = frozenset({"flatten"})
POLICIES: dict[str, type[nn.Module]] = {"hetstat": HetStatPolicy, "mlp": MLPPolicy}
PRIORS: dict[str, Callable] = {"bc": lambda policy, action_dim: BCPrior(policy),
                               "uniform": lambda policy, action_dim: UniformPrior(action_dim)}
KLS: dict[str, Callable] = {"mc": MonteCarloKL, "exact": ExactKL}
REWARDS: dict[str, Callable[[AgentConfig, nn.Module], Any]] = {
    "coherent": lambda c, policy: CoherentReward(
        policy, variant=c.reward_variant, scale=c.reward_scale,
        shift=None if c.reward_shift in ("bound", "demos") else float(c.reward_shift), density=c.reward_density,
        refines=c.refine_reward, kl_weight=c.refine_kl_weight, n_demo=c.n_demo,
        shift_from_demos=c.reward_shift == "demos"),
    "env": lambda c, policy: EnvironmentReward(),
    "sparse": lambda c, policy: SparseReward(),
}
REFINEMENTS: dict[str, Callable[[], Any]] = {"critic_step": RefinePerCriticStep, "update": RefinePerUpdate}
NORMALISERS: dict[str, Callable[[AgentConfig], Any]] = {"none": lambda c: NoNormalisation(),
                                                        "running_std": lambda c: ReturnNormalisation(c.gamma)}

# How the executed action is made from the base's and the small policy's (`csil_lite.base.compose`; what the
# reward, critic and replay see per composition is documented there and in `BaseConfig`).
COMPOSITIONS: dict[str, Callable[[BaseConfig], Any]] = {
    "ensemble": lambda b: Ensemble(),
    "residual": lambda b: Residual(scale=b.residual_scale),
}


def _choose(table: dict, name: str, what: str):
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; choose from {tuple(table)}") from None


def make_encoder(name: str, obs_spec: Any) -> nn.Module:
    """The encoder component `name` for observations of per-leaf spec `obs_spec` (`csil_lite.obs.spec_of`)."""
    return _choose(ENCODERS, name, "encoder")(obs_spec)


def make_policy(nets: NetworkConfig, action_dim: int, obs_spec: Any, *, encoded: bool = True) -> nn.Module:
    """The policy network of `nets` (HetStat or MLP), reading observations of `obs_spec` through its encoder
    (`encoded=False`: the same network without it, reading the encoder's features; its params are the full
    network's minus the encoder's)."""
    cls = _choose(POLICIES, nets.policy, "policy")
    encoder = make_encoder(nets.encoder, obs_spec) if encoded else None
    return cls(action_dim=action_dim, encoder=encoder, **nets.policy_kwargs())


def make_critic(hidden: Sequence[int], norm: str = "layer", head: str = "scalar", ensemble: int = 1,
                atoms: Sequence[float] | None = None, *, n_atoms: int = 101, v_min: float | None = -8.0,
                v_max: float = 0.0, encoder: nn.Module | None = None) -> Critic:
    """The critic component: normalisation x head x ensemble size.

    'layer' is the reference's `LayerNormCritic`; the others are `NormalisedCritic`s. A categorical head takes
    its `atoms` if given (`n_atoms` = their number), else resolves them from the demonstrations
    (`QuantileSupport(n_atoms, v_min, v_max)`, `v_min=None`: the reward's floor) in `Agent.resolve`.
    """
    support = None
    if head == "scalar":
        head_, outputs = ScalarHead(), 1
    elif head == "categorical":
        if atoms is not None:
            if len(atoms) < 2:
                raise ValueError("make_critic: a categorical support needs at least 2 atoms")
            head_ = CategoricalHead(tuple(float(a) for a in atoms))
        else:
            head_, support = CategoricalHead(()), QuantileSupport(n_atoms, v_min, v_max)
        outputs = len(atoms) if atoms is not None else n_atoms
    else:
        raise ValueError(f"unknown critic head {head!r}; choose 'scalar' or 'categorical'")
    if norm not in NORMALISATIONS:
        raise ValueError(f"unknown critic normalisation {norm!r}; choose from {NORMALISATIONS}")
    if norm == "layer":
        cls, kwargs = LayerNormCritic, dict(hidden=tuple(hidden), outputs=outputs, encoder=encoder)
    else:
        cls, kwargs = NormalisedCritic, dict(hidden=tuple(hidden), norm=norm, outputs=outputs, encoder=encoder)
    module = cls(**kwargs) if ensemble == 1 else critic_ensemble(cls, ensemble, **kwargs)
    return Critic(module, head_, batch_norm=norm in ("batch", "batch_weight"), weight_norm=norm == "batch_weight",
                  size=ensemble, member=cls(**kwargs) if ensemble > 1 else None, support=support)


def critic_of(nets: NetworkConfig, obs_spec: Any, *, encoded: bool = True) -> Critic:
    """The critic component of `nets`, reading observations of `obs_spec` through its encoder (`encoded=False`:
    without it, reading the encoder's features)."""
    v_min = None if nets.critic_v_min == "floor" else float(nets.critic_v_min)
    return make_critic(nets.critic_hidden, nets.critic_norm, nets.critic_head, nets.critic_ensemble,
                       n_atoms=nets.critic_atoms, v_min=v_min, v_max=nets.critic_v_max,
                       encoder=make_encoder(nets.encoder, obs_spec) if encoded else None)


def critic_learning_rate(config: AgentConfig, critic_steps: int | None = None) -> float | optax.Schedule:
    """`critic_lr`, or with `critic_lr_final` set, a linear fall from it to that over `critic_steps` (the run's
    online critic steps; required then)."""
    if config.critic_lr_final is None:
        return config.critic_lr
    if critic_steps is None or critic_steps < 1:
        raise ValueError(f"AgentConfig.critic_lr_final = {config.critic_lr_final}: the schedule needs the run's "
                         f"number of critic steps (got {critic_steps})")
    return optax.linear_schedule(config.critic_lr, config.critic_lr_final, critic_steps)


def agent_of(config: AgentConfig, policy: nn.Module, critic: Critic, action_dim: int,
             critic_steps: int | None = None, encoder_training: Any = None) -> Agent:
    """The agent of `config`'s components around a given policy network and critic component. `critic_steps`:
    the run's online critic steps, which a critic learning-rate schedule runs over (`critic_learning_rate`);
    `encoder_training`: which gradients train the encoders (default `FrozenAfterBC`, a no-op for `Flatten`)."""
    prior = PRIORS[config.prior](policy, action_dim)
    enc = FrozenAfterBC() if encoder_training is None else encoder_training
    return Agent(
        config=config,
        policy=policy,
        critic=critic,
        prior=prior,
        kl=KLS[config.kl](prior),
        reward=REWARDS[config.reward](config, policy),
        refinement=_choose(REFINEMENTS, config.refine_every, "refinement schedule")(),
        normaliser=_choose(NORMALISERS, config.return_norm, "return normalisation")(config),
        policy_optim=enc.optimiser(optax.adam(config.actor_lr)),
        critic_optim=enc.optimiser(critic.optimiser(critic_learning_rate(config, critic_steps),
                                                    config.critic_weight_decay)),
        reward_optim=enc.optimiser(optax.sgd(config.reward_lr)),
        action_dim=action_dim,
        encoder_training=enc,
    )


def encoder_training_of(nets: NetworkConfig) -> Any:
    """The encoder-training rule of `nets`; a parameter-free encoder (`Flatten`) has none to apply (`EndToEnd`, the
    identity: state runs keep plain optimisers and their checkpoints' layout)."""
    rule = _choose(ENCODER_TRAINING, nets.encoder_training, "encoder training")
    return EndToEnd() if nets.encoder in PARAMETER_FREE_ENCODERS else rule()


def make_agent(cfg: RunConfig, obs_spec: Any, action_dim: int) -> Agent:
    """The agent a run configures, for observations of `obs_spec` and `action_dim` actions (components not yet
    resolved: call `Agent.resolve` with the BC params and the demonstrations, or `with_setup` on a resume)."""
    critic_steps = max(1, (cfg.env_steps - cfg.learning_starts) * cfg.agent.utd)
    rule = encoder_training_of(cfg.nets)
    agent = agent_of(cfg.agent, make_policy(cfg.nets, action_dim, obs_spec), critic_of(cfg.nets, obs_spec),
                     action_dim, critic_steps, rule)
    if rule.shares_one_encoder:  # the update encodes each batch once and runs these networks on the features
        agent = agent._replace(headless=agent_of(
            cfg.agent, make_policy(cfg.nets, action_dim, obs_spec, encoded=False),
            critic_of(cfg.nets, obs_spec, encoded=False), action_dim, critic_steps, rule))
    # convolutions on a CPU: the UTD critic steps unrolled instead of looped (`obs.unroll_loops`)
    convolves = cfg.nets.encoder not in PARAMETER_FREE_ENCODERS
    return agent._replace(unroll_critic_steps=convolves and jax.default_backend() == "cpu",
                          augment=augmentation_of(cfg.nets))


def augmentation_of(nets: NetworkConfig) -> Any:
    """The augmentation component of `nets.augment` (`NoAugmentation` or DrQ's `RandomShift(augment_pad)`)."""
    cls = _choose(AUGMENTATIONS, nets.augment, "augmentation")
    return cls(nets.augment_pad) if nets.augment == "shift" else cls()


def make_composition(base: BaseConfig) -> Any:
    """The composition component of `base.compose` (`Ensemble` or `Residual`), used on the environment side."""
    return _choose(COMPOSITIONS, base.compose, "composition")(base)


def open_base(base: BaseConfig, *, seed: int = 0, wait: float = 30.0) -> Any:
    """The `BasePolicy` of `base.source`: a stand-in loaded from its directory, or a client of the policy server
    at host:port (`wait` seconds of retries while it starts). None when the configuration has no base."""
    if base.kind == "none":
        return None
    if base.kind == "openpi":
        from csil_lite.base.client import RemoteBasePolicy, parse_address

        host, port = parse_address(base.source)
        return RemoteBasePolicy(host, port, wait=wait)
    from csil_lite.base.standin import load_standin
    from csil_lite.errors import UserError

    try:
        return load_standin(base.source, seed=seed)
    except (ValueError, OSError) as e:
        raise UserError(f"BaseConfig.source = {base.source!r}: {e}") from None


def base_edge(base: BaseConfig, *, seed: int = 0, wait: float = 30.0) -> NoBase | BaseEdge:
    """What a run does at the environment's edge for `base` (`NoBase` without one). A stand-in is loaded here,
    once, and copied per environment (its own noise, `reseed`); a server gets a connection of its own per
    environment (and one for labelling the demonstrations), opened when the environment is wrapped and closed
    with it."""
    if base.kind == "none":
        return NoBase()
    if base.kind == "openpi":
        def spawn() -> Any:
            return open_base(base, seed=seed, wait=wait)
    else:
        first = open_base(base, seed=seed, wait=wait)

        def spawn() -> Any:
            twin = copy.copy(first)
            twin.reseed(seed)
            return twin
    return BaseEdge(spawn, make_composition(base), base.chunk, base.residual_init_scale)


__all__ = ["COMPOSITIONS", "ENCODERS", "ENCODER_TRAINING", "KLS", "NORMALISERS", "POLICIES", "PRIORS", "REFINEMENTS", "REWARDS",
           "agent_of", "augmentation_of", "base_edge", "encoder_training_of", "critic_learning_rate", "critic_of", "make_agent", "make_composition",
           "make_critic", "make_encoder", "make_policy", "open_base"]
