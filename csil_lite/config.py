"""Frozen configurations: a run (`RunConfig`) = data + budget + the agent's components + networks.

Named algorithms are small files in `csil_lite.configs` (each `get(budget) -> RunConfig`);
`csil_lite.configs.preset(budget, algo=...)` looks one up. The budget is one field, `RunConfig.budget`, one of
`BUDGETS`: "preview" (CPU minutes), "reference" (the reference CSIL code's budget) and "paper" (the seed paper's
Table II). Budgets share every code path; only sizes and step counts differ. This module imports nothing from
`csil_lite.configs`: the named configurations build on it, not the other way round.

Values are validated on construction so a bad learning rate or an impossible batch fails before any compilation,
with a message naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from csil_lite.errors import UserError

# The training budgets, by name. A new one (say a "smoke" budget for CI) is a new value here and a branch in
# `configs.base.get`.
Budget = Literal["preview", "reference", "paper"]
BUDGETS: tuple[str, ...] = typing.get_args(Budget)
PRESETS = BUDGETS  # the older name, and the CLI's --preset: a preset is a budget
PRIORS = ("bc", "uniform")
REWARDS = ("coherent", "env", "sparse")
KL_ESTIMATORS = ("mc", "exact")
CRITIC_NORMS = ("layer", "none", "batch", "batch_weight")
Compose = Literal["ensemble", "residual"]
COMPOSITIONS: tuple[str, ...] = typing.get_args(Compose)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, tp: Any) -> bool:
    """Whether `value` is of annotation `tp`: bool is not an int, an int is a float, floats are finite."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, origin or tp)


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {int: "integers", float: "finite numbers", str: "strings", bool: "bools"}
            return f"a tuple of {plural.get(args[0], _describe(args[0]))}"
        return f"a tuple ({', '.join(_describe(a) for a in args)})"
    names = {bool: "a bool (true or false)", int: "an integer", float: "a finite number", str: "a string",
             type(None): "null (None)"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def check_field_types(obj: Any) -> None:
    """Check every field of dataclass `obj` against its annotation; a mismatch is a `UserError` naming
    Class.field, the value and the expected type (before any range check compares, say, a string with 0)."""
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _matches(value, hints[f.name]):
            raise UserError(f"{type(obj).__name__}.{f.name} = {value!r} ({type(value).__name__}): "
                            f"expected {_describe(hints[f.name])}")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ValueError(f"{type(obj).__name__}.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class NetworkConfig:
    # The encoder component: maps an observation pytree to the features the policy, critic and reward networks
    # read. 'flatten' concatenates the keys' arrays; 'resnet_per_camera' (CSIL++) and 'impala_shared' (the original
    # CSIL) encode the images (`nets.encoders.PixelEncoder`) and concatenate the vectors after them.
    encoder: Literal["flatten", "resnet_per_camera", "impala_shared"] = "flatten"
    # Which gradients train the encoders (`nets.encoders.ENCODER_TRAINING`): BC, then frozen and shared with the
    # critic (the reference's design), or each network's own loss throughout.
    encoder_training: Literal["frozen_after_bc", "end_to_end"] = "frozen_after_bc"
    # Data augmentation of image observations (`nets.encoders.AUGMENTATIONS`): 'shift' is DrQ's random shift by up
    # to `augment_pad` pixels, in BC and in every critic and actor step (observations and next observations
    # independently); image observations only. 'none': the frames as rendered.
    augment: Literal["none", "shift"] = "none"
    augment_pad: int = 4
    policy: Literal["hetstat", "mlp"] = "hetstat"
    policy_hidden: tuple[int, ...] = (256, 256)
    bottleneck: int = 12
    features: int = 256  # D: the HetStat head costs d_a * D^2
    activation: Literal["triangle", "sin", "prelu"] = "triangle"  # nets.layers.PERIODIC_ACTIVATIONS
    # HetStat's trained log inverse length-scale starts here (reference: -5, a long length-scale).
    init_log_input_scale: float = -5.0
    # LayerNorm and tanh after the HetStat trunk's first layer (Acme's LayerNormMLP, as the reference's
    # policy option; the seed paper's Table II lists LayerNorm in the policy). False: the reference's default.
    policy_layer_norm: bool = False
    critic_hidden: tuple[int, ...] = (256, 256)
    # The critic component. 'layer': the reference's LayerNorm MLP (LayerNorm + tanh after the first layer, ELU);
    # 'none' | 'batch' | 'batch_weight': ReLU MLPs without normalisation, or XQC's batch norm (+ weight norm, a
    # unit fan-in projection after every optimiser step); batch norm runs one joint pass over [s; s'].
    critic_norm: str = "layer"
    critic_head: str = "scalar"  # 'scalar' | 'categorical' (atoms by quantiles of the demonstrations' returns)
    critic_atoms: int = 101  # categorical support size, on [critic_v_min, critic_v_max]
    # A number, or 'floor': the reward source's lowest value estimated from the demonstrations (its
    # `value_floor`: for the coherent reward, the lowest reward of the demonstrations and of the BC policy's own
    # actions at their states, over an infinite horizon), resolved by `loop.prepare`.
    critic_v_min: float | str = -8.0
    critic_v_max: float = 0.0
    critic_ensemble: int = 1  # 2: twin critics (nn.vmap), the target from the lower one

    def __post_init__(self) -> None:
        check_field_types(self)
        _positive(self, "bottleneck", "features", "critic_ensemble")
        if self.augment_pad < 0:
            raise ValueError(f"NetworkConfig.augment_pad must be >= 0, got {self.augment_pad}")
        if self.policy == "hetstat" and self.features % 2:
            raise UserError(f"NetworkConfig.features = {self.features}: the hetstat policy needs an even "
                            "number (its features are pairs act(z + pi/4), act(z - pi/4) of features/2 "
                            "frequencies)")
        if self.critic_norm not in CRITIC_NORMS:
            raise ValueError(f"NetworkConfig.critic_norm must be one of {CRITIC_NORMS}, got {self.critic_norm!r}")
        if self.critic_head not in ("scalar", "categorical"):
            raise ValueError(f"NetworkConfig.critic_head must be 'scalar' or 'categorical', got {self.critic_head!r}")
        if isinstance(self.critic_v_min, str) and self.critic_v_min != "floor":
            raise ValueError(f"NetworkConfig.critic_v_min must be a number or 'floor', got {self.critic_v_min!r}")
        v_min = -math.inf if self.critic_v_min == "floor" else self.critic_v_min
        if self.critic_atoms < 2 or not v_min < self.critic_v_max:
            raise ValueError(f"NetworkConfig: need critic_atoms >= 2 and critic_v_min < critic_v_max, got "
                             f"{self.critic_atoms}, [{self.critic_v_min}, {self.critic_v_max}]")
        for name in ("policy_hidden", "critic_hidden"):
            if any(h <= 0 for h in getattr(self, name)):
                raise ValueError(f"NetworkConfig.{name} = {getattr(self, name)}: sizes must be positive")

    def policy_kwargs(self) -> dict:
        if self.policy == "hetstat":
            return dict(hidden=self.policy_hidden, bottleneck=self.bottleneck, features=self.features,
                        activation=self.activation, init_log_input_scale=self.init_log_input_scale,
                        layer_norm=self.policy_layer_norm)
        return dict(hidden=self.policy_hidden)


@dataclass(frozen=True)
class AgentConfig:
    """One KL-regularised soft actor-critic, described by its components and their numbers.

    Components (built once, by `assembly.make_agent`): the KL's reference `prior` (the frozen BC policy, or the
    uniform density on [-1, 1]^d, which makes the KL an entropy bonus), the `reward` source (the coherent reward
    of a refinable copy of the BC policy, the environment's, or 'sparse': -1 per step until success, which
    terminates), and the `kl` estimator (a single-sample Monte-Carlo
    estimate, or the exact KL of the latent Gaussians, which needs the BC prior). The update schedule is `utd`
    critic steps per actor step. The critic network is chosen in `NetworkConfig`.
    """

    prior: str = "bc"  # 'bc' | 'uniform'
    reward: str = "coherent"  # 'coherent' | 'env' | 'sparse' (-1 per step, 0 on the absorbing success step)
    kl: str = "mc"  # 'mc' | 'exact'
    gamma: float = 0.99
    tau: float = 0.005
    beta: float = 0.01  # temperature of the KL (to the BC policy, or to the uniform prior: an entropy bonus)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    reward_lr: float = 1e-3  # plain SGD, as the reference
    reward_variant: str = "neg"  # success-absorbing tasks: shifted <= 0, so ending the episode is never avoided
    reward_scale: float = 1.0
    # 'neg' shift per step: "bound" = the strict bound (the paper's rule), "demos" = the largest reward on the
    # demonstrations (resolved to a float by `loop.prepare`), or a float. See `loop.demo_reward_shift`.
    reward_shift: float | str = "bound"
    # log q(a|s) in action space (the reference; tanh Jacobian included) or of the pre-tanh Gaussian ("latent"),
    # whose maximum is the BC action tanh(mean) at every state. See `coherent.policy_reward`.
    reward_density: str = "action"
    refine_reward: bool = True  # refine the coherent reward's network (coherent reward only)
    refine_kl_weight: float = 1.0
    # How often the reward refines: once per critic step (the reference CSIL code, whose update loops the critic
    # and reward gradients together: UTD refinements per env step), or once per update (one per env step,
    # on the update's last batch, whatever the UTD). `assembly.REFINEMENTS`.
    refine_every: Literal["critic_step", "update"] = "critic_step"
    # XQC's reward normalisation: "running_std" divides the critic's rewards by the running standard deviation
    # of the discounted return G <- r + gamma G (reset at episode ends), started from the demonstrations' reward
    # stream and updated at every env step (`agents.components.ReturnNormalisation`); "none" leaves them raw.
    return_norm: Literal["none", "running_std"] = "none"
    grad_penalty: float = 1.0  # weight of sqrt(E_demo ||dQ/da||^2)
    # AdamW decay of the critic params that the weight-norm projection leaves free (batch-norm scales and biases,
    # biases); of every critic param without weight norm. 0: plain Adam. See agents.core.critic_optimiser.
    critic_weight_decay: float = 0.0
    # None: a constant critic_lr. A number: the critic's learning rate falls linearly from critic_lr to it over
    # the run's online critic steps, (env_steps - learning_starts) * utd (XQC: 3e-4 -> 3e-5, no decay).
    critic_lr_final: float | None = None
    utd: int = 1  # critic updates per actor update
    n_demo: int = 256
    n_online: int = 256

    def __post_init__(self) -> None:
        check_field_types(self)
        for name, allowed in (("prior", PRIORS), ("reward", REWARDS), ("kl", KL_ESTIMATORS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"AgentConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        _positive(self, "actor_lr", "critic_lr", "reward_lr", "tau", "utd", "n_online")
        if not 0 <= self.gamma < 1:
            raise ValueError(f"AgentConfig.gamma must lie in [0, 1), got {self.gamma}")
        if self.critic_lr_final is not None and not self.critic_lr_final > 0:
            raise ValueError(f"AgentConfig.critic_lr_final must be > 0 or None, got {self.critic_lr_final}")
        if self.critic_weight_decay < 0:
            raise ValueError(f"AgentConfig.critic_weight_decay must be >= 0, got {self.critic_weight_decay}")
        if self.beta < 0 or self.n_demo < 0 or self.grad_penalty < 0:
            raise ValueError(f"beta, n_demo and grad_penalty must be >= 0 (got {self.beta}, {self.n_demo}, {self.grad_penalty})")
        if self.reward_variant not in ("pos", "neg"):
            raise ValueError(f"reward_variant must be 'pos' or 'neg', got {self.reward_variant!r}")
        if self.reward_density not in ("action", "latent"):
            raise ValueError(f"reward_density must be 'action' or 'latent', got {self.reward_density!r}")
        if isinstance(self.reward_shift, str) and self.reward_shift not in ("bound", "demos"):
            raise ValueError(f"reward_shift must be 'bound', 'demos' or a number, got {self.reward_shift!r}")
        if self.kl == "exact" and self.prior != "bc":
            raise ValueError("AgentConfig.kl='exact' needs prior='bc': the KL of a tanh-Gaussian to the uniform "
                             "prior has no closed form (use kl='mc')")
        if self.refines_reward and self.n_demo == 0:
            raise ValueError("reward refinement needs demonstrations in every batch (n_demo > 0), "
                             "or refine_reward=False")

    @property
    def numeric_shift(self) -> float | None:
        """The shift as the reward functions take it: None for the strict bound, else a number."""
        if self.reward_shift == "bound":
            return None
        if self.reward_shift == "demos":
            raise ValueError("reward_shift='demos' is resolved from the BC policy by loop.prepare; pass a number here")
        return float(self.reward_shift)

    @property
    def refines_reward(self) -> bool:
        return self.reward == "coherent" and self.refine_reward


@dataclass(frozen=True)
class BaseConfig:
    """A frozen base policy (a large behaviour model) acting next to the small policy; `source=None`: no base.

    `source`: None, a stand-in checkpoint directory (`csil-lite lbm train --out DIR`) or the `host:port` of a
    policy server speaking openpi's protocol (pi0.5, or `csil-lite serve`). `chunk`: N, the actions executed
    open-loop per base query (the paper: 10 of pi0.5's 10); at most the base's action horizon, checked when the
    base is opened. `compose`: how the executed action is made from the base's action a_b and the small
    policy's a_pi (`csil_lite.base.compose`, chosen in `assembly.COMPOSITIONS`):

    - 'ensemble' (paper eq. 3): (a_b + a_pi) / 2.
    - 'residual' (paper eq. 2, thesis 6.2): tanh(atanh(a_pi) + atanh(clip(a_b))), i.e. the small policy's latent
      mean shifted by atanh(a_b); with `residual_scale` s set, the peers' bounded form clip(a_b + s * a_pi).

    What the reward, the critic and the replay see, in both modes: the small policy's *own* action a_pi (the
    replay stores it with the base's action; the executed action is `compose(a_b, a_pi)`, recomputable). The
    base action is no input of the policy or the critic networks. BC start: 'ensemble' fits a_pi to the
    demonstrated action (the paper), 'residual' to the action that executes the demonstrated one through the
    composition (`Composition.bc_target`). Why, and the tests that pin it: `csil_lite.base.compose`.

    Residual-only options (what residual peers found necessary, `../research`: ResFiT, Policy Decorator):
    `residual_scale` (None: the thesis's unbounded latent shift; a number s in (0, 2]: |a - a_b| <= s, the
    peers use 0.03-0.3) and `residual_init_scale` (None: start from the BC fit; a number in [0, 1]: multiply the
    policy's last mean layer by it at the start, 0 = the residual starts at exactly zero, i.e. at the base).
    """

    source: str | None = None
    chunk: int = 10
    compose: Compose = "ensemble"
    residual_scale: float | None = None
    residual_init_scale: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.source is not None:
            if not self.source.strip() or self.source != self.source.strip():
                raise UserError(f"BaseConfig.source = {self.source!r}: expected a stand-in checkpoint directory "
                                "or host:port, without surrounding spaces")
            if self.kind == "openpi":
                port = int(self.source.rsplit(":", 1)[1])
                if not 1 <= port <= 65535:
                    raise UserError(f"BaseConfig.source = {self.source!r}: port {port} outside 1..65535")
        if self.chunk < 1:
            raise UserError(f"BaseConfig.chunk = {self.chunk}: the base executes at least 1 action per query")
        if self.compose != "residual":
            for name in ("residual_scale", "residual_init_scale"):
                if getattr(self, name) is not None:
                    raise UserError(f"BaseConfig.{name} = {getattr(self, name)!r} applies to compose='residual' "
                                    f"only (compose is {self.compose!r})")
        if self.residual_scale is not None and not 0 < self.residual_scale <= 2:
            raise UserError(f"BaseConfig.residual_scale = {self.residual_scale}: expected a number in (0, 2] "
                            "(the largest |executed - base| per dimension) or None")
        if self.residual_init_scale is not None and not 0 <= self.residual_init_scale <= 1:
            raise UserError(f"BaseConfig.residual_init_scale = {self.residual_init_scale}: expected a number in "
                            "[0, 1] or None")

    @property
    def kind(self) -> str:
        """'none', 'openpi' ([ws://]host:port: digits after the last ':', no '/') or 'standin' (a directory; write
        one whose name looks like host:port as ./name)."""
        if self.source is None:
            return "none"
        rest = self.source[len("ws://"):] if self.source.startswith("ws://") else self.source
        head, sep, tail = rest.rpartition(":")
        return "openpi" if sep and head and tail.isdigit() and "/" not in rest else "standin"


Remedy = Literal["none", "whiten", "project", "discriminant", "demo_whiten", "sngp"]
REMEDIES: tuple[str, ...] = typing.get_args(Remedy)


@dataclass(frozen=True)
class EmbedConfig:
    """What the policy sees in place of the task's state vector: a high-dimensional embedding of it (chapter 10).

    `kind='synthetic'`: `embeddings.SyntheticEmbedding` of the z-scored state: `signal_dims` coordinates that
    carry the state (`signal`: a random linear map of it, or random Fourier features of length-scale
    `length_scale`) and `dim - signal_dims` features of a nuisance
    with `nuisance_latent` coordinates, drawn afresh at every observation, on and off the demonstrations alike
    (what a large model's activations do with flow noise and appearance). `oracle_scale`: the state itself
    appended at that scale (the thesis's object state); None: not appended. `remedy` (chapter 10,
    `embeddings.fit_remedy`): a linear map fitted on `remedy_pairs` pairs of re-embeddings of the demonstrated
    states before anything is trained, applied to every observation: 'whiten' by the within-state (nuisance)
    covariance, 'project' the nuisance directions out, 'discriminant' keep the `discriminant_dims` directions
    with the largest demonstration-to-nuisance variance ratio, 'demo_whiten' by the demonstrations' covariance
    and 'sngp' a random projection to 32 coordinates with a layer normalisation (two controls), 'none'. `seed`: the embedding's random weights. `kind='none'`: the state as it is.

    `kind='standin'`: the activations of a trained stand-in base policy's action expert (`source`, after
    `layers` of its layers) at the sampler's first step, with the flow noise drawn afresh at every observation
    (`StandInPolicy.activations`): a large model's internal state in miniature, whose nuisance is the model's
    own. `dim`, `signal_dims`, `nuisance_latent`, `signal` and `length_scale` do not apply to it.
    """

    kind: Literal["none", "synthetic", "standin"] = "none"
    source: str | None = None  # kind='standin': the stand-in checkpoint directory (`csil-lite lbm train --out`)
    layers: int | None = None  # kind='standin': the action expert's layers the activations are read after
    dim: int = 256
    signal_dims: int = 64
    nuisance_latent: int = 32
    signal: Literal["linear", "fourier"] = "linear"
    length_scale: float = 1.0  # of the Fourier signal features and of the nuisance's
    oracle_scale: float | None = None
    remedy: Remedy = "none"
    remedy_pairs: int = 4096
    discriminant_dims: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 1 <= self.signal_dims <= self.dim or self.nuisance_latent < 1 or self.remedy_pairs < 2:
            raise UserError(f"EmbedConfig: need 1 <= signal_dims ({self.signal_dims}) <= dim ({self.dim}), "
                            f"nuisance_latent >= 1 ({self.nuisance_latent}) and remedy_pairs >= 2 "
                            f"({self.remedy_pairs})")
        if self.length_scale <= 0 or (self.oracle_scale is not None and self.oracle_scale <= 0):
            raise UserError(f"EmbedConfig: length_scale ({self.length_scale}) and oracle_scale "
                            f"({self.oracle_scale}) must be > 0")
        if not 1 <= self.discriminant_dims <= self.dim:
            raise UserError(f"EmbedConfig.discriminant_dims = {self.discriminant_dims}: expected 1..dim ({self.dim})")
        if self.kind == "none" and (self.remedy != "none" or self.oracle_scale is not None):
            raise UserError("EmbedConfig: a remedy or an oracle needs an embedding (kind='synthetic' or 'standin')")
        if (self.kind == "standin") != (self.source is not None):
            raise UserError(f"EmbedConfig: kind='standin' reads a stand-in checkpoint from source, and only it "
                            f"does (kind={self.kind!r}, source={self.source!r})")
        if self.layers is not None and (self.kind != "standin" or self.layers < 0):
            raise UserError(f"EmbedConfig.layers = {self.layers}: a number of the stand-in's layers (>= 0), for "
                            "kind='standin' only")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; written to the run directory as config.json.

    `algo` names the configuration the run was built from (a file in `csil_lite.configs`) and `budget` the budget
    it was built at (`BUDGETS`): labels for logs and plots. Nothing reads them to decide what to compute; the
    sizes and step counts below and the components in `agent` and `nets` do that. A config.json written before
    `budget` existed reads as 'reference' (the default).
    """

    algo: str = "csil"
    budget: Budget = "reference"
    task: str = "pointmass-obstacles"
    seed: int = 0
    num_demos: int = 10
    demos_path: str | None = None  # robomimic HDF5; None = generate with the task's scripted expert
    # What the policy sees: 'state' (low-dim vector) or 'image' (robosuite's two cameras as uint8 [H, W, 3] plus
    # proprioception, a dict observation; robosuite tasks only; the demonstrations file must hold the frames, e.g.
    # from `csil-lite demos generate --images --image-size N`). `configs.from_pixels` sets it with its encoder.
    obs: Literal["state", "image"] = "state"
    image_size: int = 84  # camera frames are image_size x image_size
    bc_steps: int = 25_000
    bc_lr: float = 1e-3
    bc_batch: int = 256
    # Demonstrated actions are clipped to +-(1 - margin) before BC, the reward, SARSA and the online batches see
    # them (reference: 0). Saturated targets otherwise drive HetStat's std to its ceiling: see pretrain/bc.py.
    demo_action_margin: float = 0.0
    critic_pretrain_steps: int = 5_000  # SARSA evaluation of the demonstrator before the online phase; 0: none
    critic_pretrain_lr: float = 1e-4
    env_steps: int = 250_000
    learning_starts: int = 10_000
    actor_warmup: int = 0  # updates that train only the critic (+ reward) on the BC policy's rollouts
    replay_capacity: int = 1_000_000
    eval_every: int = 1_000
    eval_episodes: int = 10
    checkpoint_every: int = 0  # 0: only at the end
    # The paper's protocol: the best evaluated parameters are kept; at the end they are re-evaluated
    # `final_eval_repeats` times x `eval_episodes` episodes on fresh episode seeds (final_eval.json; the paper: 5).
    final_eval_repeats: int = 0
    learn_online: bool = True  # False: the BC policy is only evaluated, on the same schedule (the BC baseline)
    agent: AgentConfig = field(default_factory=AgentConfig)
    nets: NetworkConfig = field(default_factory=NetworkConfig)
    # A frozen base policy composed with the small one (None: no base). See BaseConfig for what the reward,
    # critic and replay see per composition, and the BC start rule.
    base: BaseConfig = field(default_factory=BaseConfig)
    # What the policy sees in place of the state (chapter 10): an embedding with nuisance, and its remedy.
    embed: EmbedConfig = field(default_factory=EmbedConfig)

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.algo:
            raise ValueError(f"RunConfig.algo must be a non-empty name, got {self.algo!r}")
        _positive(self, "num_demos", "bc_steps", "bc_lr", "bc_batch", "critic_pretrain_lr", "env_steps",
                  "replay_capacity", "eval_every", "eval_episodes", "image_size")
        if not 0.0 <= self.demo_action_margin < 1.0:
            raise ValueError(f"RunConfig.demo_action_margin must lie in [0, 1), got {self.demo_action_margin}")
        nonneg = ("seed", "critic_pretrain_steps", "learning_starts", "checkpoint_every", "actor_warmup",
                  "final_eval_repeats")
        for name in (n for n in nonneg if getattr(self, n) < 0):
            raise ValueError(f"RunConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.agent.n_online > self.replay_capacity:
            raise ValueError(
                f"online batch ({self.agent.n_online}) is larger than the replay capacity ({self.replay_capacity})"
            )
        if self.embed.kind != "none" and self.obs != "state":
            raise UserError(f"embed.kind = {self.embed.kind!r} embeds a state vector, but obs = {self.obs!r}; "
                            "use obs='state'")
        if self.nets.augment != "none" and self.obs != "image":
            raise UserError(f"nets.augment = {self.nets.augment!r} shifts images, but obs = {self.obs!r}: use "
                            "obs='image' (e.g. `csil-lite train --obs image`) or nets.augment='none'")
        if self.agent.return_norm != "none" and self.nets.critic_v_min == "floor":
            raise UserError("agent.return_norm normalises the rewards, but nets.critic_v_min='floor' is a raw "
                            "reward's floor: give the support's range in normalised units (XQC and the paper: "
                            "critic_v_min=-8.0)")
        if self.learn_online and self.learning_starts < self.agent.n_online:
            raise ValueError(
                f"learning_starts ({self.learning_starts}) must be >= the online batch ({self.agent.n_online}): "
                "the first batch would be larger than the buffer"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        agent = AgentConfig(**d.pop("agent", {}))
        nets_d = dict(d.pop("nets", {}))
        for k in ("policy_hidden", "critic_hidden"):
            if k in nets_d:
                nets_d[k] = tuple(nets_d[k])
        base = BaseConfig(**d.pop("base", {}))  # a config.json written before the base section: no base
        embed = EmbedConfig(**d.pop("embed", {}))  # ... or before the embed section: the state as it is
        return cls(agent=agent, nets=NetworkConfig(**nets_d), base=base, embed=embed, **d)


def with_overrides(cfg: RunConfig, **overrides: Any) -> RunConfig:
    """`cfg` with RunConfig fields replaced; `agent`, `nets`, `base` and `embed` take dicts of their own fields."""
    sections = {name: dataclasses.replace(getattr(cfg, name), **overrides.pop(name, {}))
                for name in ("agent", "nets", "base", "embed")}
    return dataclasses.replace(cfg, **sections, **overrides)
