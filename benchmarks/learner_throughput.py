"""Learner throughput at robot dimensions: CSIL and CSIL++ updates/s, the HetStat head's cost, SBX SAC/CrossQ.

Everything is timed at robot dimensions (observation 19, action 7) on random data of the right shapes (the
cost of an update does not depend on the values), after a compile call, as the median over interleaved rounds
(each round times every contender once, so a burst of load from other processes hits all of them alike).

* CSIL: one call of csil_lite's jitted update (utd=1: one critic step, one reward-refinement step, one actor
  step), HetStat policy (trunk `width` x 2, bottleneck 12, D=256 features), LayerNorm critic `width` x 2, at
  the paper's batch (256 demo + 256 online rows) and at batch 128 (64 + 64, the SBX comparison's batch).
* CSIL++: csil_lite's jitted update with the `csilpp` configuration's components (exact KL, utd 4: four critic
  and reward-refinement steps then one actor step) and critic (batch + weight norm, 101-atom categorical head,
  twin critics) at `width` x 2, batch 128 (64 + 64, Table II).
* HetStat forward and forward+backward at batch 512: XLA's FLOP count of the jitted function
  (`cost_analysis`) divided by its time, against this CPU's measured peak (a jitted float32 matmul, 2048^3).
* SBX (optional, `pip install csil_lite[bench]`): the jitted `_train` classmethod of SAC and CrossQ, called
  directly with `--sbx-steps` gradient steps per call (a `fori_loop` inside one jit) on a batch sampled once
  from a replay buffer filled with random transitions. Not timed: `learn()`, env steps, replay sampling,
  logging.
  Batch 128, `net_arch=[width, width]` for actor and critic, `policy_delay=1` (one critic step per actor step,
  like CSIL's utd=1), otherwise SBX's defaults (SAC: twin critic; CrossQ: batch norm, no target network).
  Ratio = CSIL updates/s at batch 128 over SBX updates/s (gradient steps/s). CSIL++ is compared with CrossQ at
  `policy_delay=4` (four critic steps per actor step, like CSIL++'s utd 4), both counted in critic steps/s.
* `--options`: only CSIL++ at batch 64+64, as the preset and with each option of issue 23 on its own (`OPTIONS`:
  the reward refined once per update instead of per critic step, the critic's learning-rate schedule, LayerNorm
  in the HetStat trunk), in critic steps/s and relative to the preset.

    python benchmarks/learner_throughput.py [--widths 256 1024] [--rounds 5] [--updates 10]
    python benchmarks/learner_throughput.py --options [--widths 256] [--rounds 7]
    python benchmarks/learner_throughput.py --paper [--rounds 3] [--out book/_artefacts/ch11/cpu_paper.json]

`--paper`: every online algorithm at its `paper` preset (chapter 11's cost of a reproduction; on a GPU machine
`scripts/gpu_throughput.sh` runs it with the CUDA build).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.agents.core import init_state, make_update
from csil_lite.assembly import agent_of, make_critic
from csil_lite.configs import preset
from csil_lite.data.transitions import Transitions
from csil_lite.nets.policy import HetStatPolicy
from csil_lite.perf import peak_gflops, xla_flops

OBS_DIM, ACT_DIM = 19, 7
FEATURES, BOTTLENECK = 256, 12
# CSIL++ options (issue 23), each on its own: AgentConfig overrides, and whether the trunk has LayerNorm
OPTIONS = {
    "CSIL++ preset": ({}, False),
    "+ refine once per update": ({"refine_every": "update"}, False),
    "+ critic lr 3e-4 -> 3e-5, no decay": ({"critic_lr_final": 3e-5, "critic_weight_decay": 0.0}, False),
    "+ LayerNorm in the trunk": ({}, True),
}


def _random_batch(utd: int, rows: int, rng: np.random.Generator) -> Transitions:
    obs = rng.standard_normal((utd, rows, OBS_DIM)).astype(np.float32)
    act = rng.uniform(-0.9, 0.9, (utd, rows, ACT_DIM)).astype(np.float32)
    z = np.zeros((utd, rows), np.float32)
    return jax.tree.map(jnp.asarray, Transitions(obs, act, z, obs.copy(), act.copy(), z, z))


def csil_stepper(width: int, n_demo: int, n_online: int, algo: str = "csil", agent_overrides: dict | None = None,
                 policy_layer_norm: bool = False) -> tuple[Callable[[int], None], float]:
    """The one place that calls csil_lite's agent API: run(n) does n jitted updates of `algo` ('csil' or
    'csilpp', its components and critic from `configs`, with `agent_overrides` of its AgentConfig and LayerNorm
    in the policy trunk if asked); + FLOPs/update."""
    paper = preset("paper", algo=algo)
    shift = paper.agent.reward_shift if paper.agent.reward_shift == "bound" else 0.0  # a number: same cost
    cfg = dataclasses.replace(paper.agent, n_demo=n_demo, n_online=n_online, reward_shift=shift,
                              **(agent_overrides or {}))
    policy = HetStatPolicy(action_dim=ACT_DIM, hidden=(width, width), bottleneck=BOTTLENECK,
                           features=FEATURES, layer_norm=policy_layer_norm)
    n = paper.nets
    v_min = -100.0 if n.critic_v_min == "floor" else n.critic_v_min  # 'floor' needs demonstrations; any range will do
    atoms = np.linspace(v_min, n.critic_v_max, n.critic_atoms)  # the cost does not depend on them
    critic = make_critic((width, width), n.critic_norm, n.critic_head, n.critic_ensemble, atoms=atoms)
    obs, act = jnp.zeros((1, OBS_DIM)), jnp.zeros((1, ACT_DIM))
    agent = agent_of(cfg, policy, critic, ACT_DIM, critic_steps=paper.env_steps * cfg.utd)
    update = make_update(agent)
    rng = np.random.default_rng(0)
    batches = [_random_batch(cfg.utd, n_demo + n_online, rng) for _ in range(4)]
    box = {"state": init_state(agent, policy.init(jax.random.PRNGKey(0), obs),
                               critic.init(jax.random.PRNGKey(1), obs, act)), "i": 0}
    key = jax.random.PRNGKey(2)

    def run(n: int) -> None:
        state, m = box["state"], None
        for _ in range(n):
            box["i"] += 1
            state, m = update(state, batches[box["i"] % 4], jax.random.fold_in(key, box["i"]))
        jax.block_until_ready((state, m))
        box["state"] = state

    # XLA's cost analysis counts a loop body once, so the `utd` critic steps (a lax.scan) are counted from
    # one-step updates: F(update of 1 critic step + actor step) + (utd - 1) F(update of 1 critic step only).
    one = jax.tree.map(lambda x: x[:1], batches[0])
    flops = xla_flops(update, box["state"], one, key) + (cfg.utd - 1) * xla_flops(
        lambda s, b, k: update(s, b, k, train_actor=False), box["state"], one, key)
    return run, flops


def hetstat_steppers(width: int, batch: int = 512) -> dict[str, tuple[Callable[[int], None], float]]:
    """HetStat forward and value+gradient at `batch`, with XLA's FLOP count per call."""
    pol = HetStatPolicy(action_dim=ACT_DIM, hidden=(width, width), bottleneck=BOTTLENECK,
                        features=FEATURES)
    obs = jax.random.normal(jax.random.PRNGKey(0), (batch, OBS_DIM))
    params = pol.init(jax.random.PRNGKey(1), obs[:1])
    params = jax.tree.map(lambda x: x + 0.01 * jax.random.normal(jax.random.PRNGKey(2), x.shape), params)

    def fwd(p, o):
        return pol.apply(p, o)

    def loss(p, o):
        mean, std = pol.apply(p, o)
        return jnp.sum(mean) + jnp.sum(jnp.log(std))

    out = {}
    for name, fn in (("fwd", fwd), ("fwd+bwd", jax.value_and_grad(loss))):
        jitted = jax.jit(fn)
        jax.block_until_ready(jitted(params, obs))

        def run(n: int, jitted=jitted) -> None:
            r = None
            for _ in range(n):
                r = jitted(params, obs)
            jax.block_until_ready(r)

        out[name] = (run, xla_flops(fn, params, obs))
    return out


def sbx_steppers(width: int, batch: int, steps: int) -> dict[str, tuple[Callable[[int], None], float]] | str:
    """SBX SAC and CrossQ `_train` calls (`steps` gradient steps each) + FLOPs/step, or why SBX is missing."""
    try:
        import gymnasium as gym
        from sbx import SAC, CrossQ
        from sbx.common.type_aliases import ReplayBufferSamplesNp
    except ImportError as e:
        return f"SBX missing ({e}); install the optional extra: pip install 'csil_lite[bench]'"

    class RobotShapes(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, action):
            return np.zeros(OBS_DIM, np.float32), 0.0, False, False, {}

    out = {}
    rng = np.random.default_rng(0)
    for name, cls, delay in (("SBX SAC", SAC, 1), ("SBX CrossQ", CrossQ, 1), ("SBX CrossQ pd4", CrossQ, 4)):
        model = cls("MlpPolicy", RobotShapes(), batch_size=batch, policy_delay=delay, gradient_steps=steps,
                    buffer_size=4 * batch * steps, policy_kwargs=dict(net_arch=[width, width]), seed=0)
        buf, n = model.replay_buffer, model.replay_buffer.buffer_size
        buf.observations[:] = rng.standard_normal(buf.observations.shape)
        buf.next_observations[:] = rng.standard_normal(buf.next_observations.shape)
        buf.actions[:] = rng.uniform(-1, 1, buf.actions.shape)
        buf.rewards[:] = rng.standard_normal(buf.rewards.shape)
        buf.full, buf.pos = True, 0
        s = buf.sample(batch * steps)
        data = ReplayBufferSamplesNp(s.observations.numpy(), s.actions.numpy(), s.next_observations.numpy(),
                                     s.dones.numpy().flatten(), s.rewards.numpy().flatten(),
                                     np.full((batch * steps,), model.gamma, np.float32))
        # The positional arguments `model.train` passes (SAC's first is tau; CrossQ has no target network).
        head = (model.tau,) if name == "SBX SAC" else ()
        box = {"states": (model.policy.qf_state, model.policy.actor_state, model.ent_coef_state, model.key)}
        assert n >= batch * steps

        def run(calls: int, model=model, data=data, head=head, box=box, delay=delay) -> None:
            r = None
            for _ in range(calls):
                qf, actor, ent, key = box["states"]
                r = model._train(*head, model.target_entropy, steps, data, delay, 0, qf, actor, ent, key)
                box["states"] = r[:4]
            jax.block_until_ready(r)

        run(1)  # compile
        # FLOPs of one critic + actor step (one-step call); not for policy_delay 4, whose actor step sits in a
        # lax.cond inside the loop, which XLA's cost analysis does not apportion.
        one = jax.tree.map(lambda x: x[:batch], data)
        flops = float("nan") if delay > 1 else xla_flops(
            lambda qf, actor, ent, key, model=model, one=one, head=head: model._train(
                *head, model.target_entropy, 1, one, 1, 0, qf, actor, ent, key), *box["states"])
        out[name] = (run, flops)
    return out


def interleaved_rates(runners: dict[str, tuple[Callable[[int], None], int]], rounds: int) -> dict[str, float]:
    """{name: median over rounds of (units per call * calls) / seconds}, every runner timed once per round."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, (run, units) in runners.items():
            t0 = time.perf_counter()
            run(1)
            times[name].append(units / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def options_main(args: argparse.Namespace) -> None:
    """CSIL++ (batch 64+64, UTD 4) as the preset and with each option alone, critic steps/s and vs the preset."""
    for width in args.widths:
        print(f"\n== CSIL++ options, width {width}, batch 64+64, UTD 4 ==")
        runners = {}
        for label, (overrides, layer_norm) in OPTIONS.items():
            run, _ = csil_stepper(width, 64, 64, "csilpp", overrides, layer_norm)
            run(1)  # compile
            runners[label] = (lambda n, run=run: run(args.updates), args.updates * 4)
        rates = interleaved_rates(runners, args.rounds)
        base = rates["CSIL++ preset"]
        for label, rate in rates.items():
            print(f"{label:38s} {rate:8.1f} critic steps/s   x{rate / base:5.2f} the preset's")


PAPER_ALGOS = ("csil", "csilpp", "xqc_od", "sac_bc", "sacfd")  # the online learners (BC has no update)


def paper_main(args: argparse.Namespace) -> None:
    """Every online algorithm's `paper` preset (Table II: its widths, batch, UTD, critic), from states: updates/s,
    XLA's GFLOP per update and the hours 510k updates take here; `--out` writes them as JSON (chapter 11)."""
    import json

    from csil_lite.book import machine_name

    peak = peak_gflops()
    machine = machine_name()
    print(f"paper presets on {machine}; matmul peak {peak:.1f} GFLOP/s")
    results = []
    for algo in PAPER_ALGOS:
        paper = preset("paper", algo=algo)
        run, flops = csil_stepper(paper.nets.policy_hidden[0], paper.agent.n_demo, paper.agent.n_online, algo)
        run(1)  # compile
        rate = interleaved_rates({algo: (lambda n, run=run: run(args.updates), args.updates)}, args.rounds)[algo]
        row = {"algo": algo, "updates_per_s": rate, "gflop_per_update": flops / 1e9, "utd": paper.agent.utd,
               "batch": paper.agent.n_demo + paper.agent.n_online, "width": paper.nets.policy_hidden[0],
               "env_steps": paper.env_steps}
        results.append(row)
        print(f"{algo:7s} batch {row['batch']:4d} UTD {row['utd']}: {rate:7.1f} updates/s, "
              f"{row['gflop_per_update']:7.3f} GFLOP/update, {paper.env_steps / rate / 3600:6.1f} h for "
              f"{paper.env_steps:,} updates")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "jax": jax.__version__, "peak_gflops": peak, "results": results}, f,
                      indent=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--updates", type=int, default=10, help="CSIL updates per timed call")
    p.add_argument("--head-calls", type=int, default=10, help="HetStat passes per timed call")
    p.add_argument("--sbx-steps", type=int, default=12,
                   help="SBX gradient steps per timed `_train` call (a multiple of 4)")
    p.add_argument("--options", action="store_true", help="only CSIL++ with each option of OPTIONS")
    p.add_argument("--paper", action="store_true", help="only every online algorithm's paper preset (Table II)")
    p.add_argument("--out", default=None, help="with --paper: also write the numbers as JSON here")
    args = p.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; obs {OBS_DIM}, action {ACT_DIM}, "
          f"D={FEATURES}, bottleneck {BOTTLENECK}; median of {args.rounds} interleaved rounds")
    if args.options:
        options_main(args)
        return
    if args.paper:
        paper_main(args)
        return
    peak = peak_gflops()
    print(f"measured peak: {peak:.1f} GFLOP/s (jitted float32 2048^3 matmul, best of 3)")
    for width in args.widths:
        print(f"\n== width {width} (policy trunk {width}x{width}, critic {width}x{width}) ==")
        runners: dict[str, tuple[Callable[[int], None], int]] = {}
        flops = {}
        for name, (run, fl) in hetstat_steppers(width).items():
            runners[f"HetStat {name} @512"] = (lambda n, run=run: run(args.head_calls), args.head_calls)
            flops[f"HetStat {name} @512"] = fl
        contenders = (("CSIL batch 256+256", 256, 256, "csil"), ("CSIL batch 64+64", 64, 64, "csil"),
                      ("CSIL++ batch 64+64", 64, 64, "csilpp"))
        for label, nd, no, algo in contenders:
            run, fl = csil_stepper(width, nd, no, algo)
            run(1)  # compile
            utd = 4 if algo == "csilpp" else 1
            # rates and FLOPs per critic step (a CSIL++ update makes 4 of them, then one actor step)
            runners[label] = (lambda n, run=run: run(args.updates), args.updates * utd)
            flops[label] = fl / utd
        sbx = sbx_steppers(width, 128, args.sbx_steps)
        if isinstance(sbx, str):
            print(sbx)
        else:
            for name, (run, fl) in sbx.items():
                runners[f"{name} batch 128"] = (lambda n, run=run: run(1), args.sbx_steps)
                flops[f"{name} batch 128"] = fl
        rates = interleaved_rates(runners, args.rounds)
        for name, rate in rates.items():
            gf = flops[name] / 1e9
            use = f"{gf:6.3f} GFLOP  {gf * rate:6.1f} GFLOP/s ({100 * gf * rate / peak:4.1f}% of peak)"
            if name.startswith("HetStat"):
                print(f"{name:26s} {1e3 / rate:8.2f} ms/pass     {use}")
            else:
                print(f"{name:26s} {rate:8.1f} critic steps/s  {use} per critic step")
        pairs = (("CSIL batch 64+64", "SBX SAC batch 128"), ("CSIL batch 64+64", "SBX CrossQ batch 128"),
                 ("CSIL++ batch 64+64", "SBX CrossQ pd4 batch 128"))
        for ours, theirs in pairs:
            if theirs in rates:
                print(f"ratio {ours} / {theirs}: {rates[ours] / rates[theirs]:.2f}")


if __name__ == "__main__":
    main()
