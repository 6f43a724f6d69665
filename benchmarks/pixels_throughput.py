"""From pixels: what images cost, at the preview's and the paper's sizes (issue 24, chapter 8).

Printed, never asserted (numbers belong to the machine that ran them):

* encoder forward and forward+backward, frames/s, for both image encoders (`impala_shared`: the original CSIL's
  IMPALA network shared by the two cameras; `resnet_per_camera`: CSIL++'s ResNet [16, 32, 64, 128] with spatial
  softmax, one per camera) on batches of two-camera observations;
* learner updates/s from pixels: one jitted CSIL++ update (UTD 4, twin batch/weight-normalised categorical
  critic, exact KL) on a random batch of image observations, encoders frozen after BC (the default; the batch
  encoded once per update and shared by every network, and for comparison encoded inside every network) and
  end to end;
* env steps/s of robosuite Lift with both cameras rendered at each step, against the state observation;
* for the encoders and the update, XLA's FLOP count per call (`csil_lite.perf.xla_flops`) and the GFLOP/s it
  ran at, against this machine's float32 matmul peak (`csil_lite.perf.peak_gflops`, measured at the start).

Timings are medians over `--rounds` after a compile call; random data of the right shapes (an update's cost
does not depend on the values).

    python benchmarks/pixels_throughput.py [--sizes 64 84] [--batch 64 128] [--rounds 5] [--out FILE.json]

`--out` also writes every number as JSON (chapter 8 reads book/_artefacts/ch08/throughput.json, made with
`--sizes 64 84 --batch 128 --rounds 2 --out book/_artefacts/ch08/throughput.json`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.agents.core import init_state, make_update, update as one_update
from csil_lite.assembly import make_agent, make_encoder
from csil_lite.book import machine_name
from csil_lite.configs import preset
from csil_lite.data.transitions import Transitions
from csil_lite.envs.robosuite import CAMERAS, PROPRIO_KEYS
from csil_lite.obs import Spec
from csil_lite.perf import peak_gflops, xla_flops

ACT = 7
PROPRIO = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def spec_of(size: int) -> dict:
    return {**{f"{c}_image": Spec((size, size, 3), np.uint8) for c in CAMERAS},
            **{k: Spec((PROPRIO[k],), np.float32) for k in PROPRIO_KEYS}}


def random_obs(spec: dict, lead: tuple[int, ...], rng: np.random.Generator) -> dict:
    return {k: (rng.integers(0, 256, lead + s.shape, dtype=np.uint8) if s.dtype == np.uint8
                else rng.normal(size=lead + s.shape).astype(np.float32)) for k, s in spec.items()}


RESULTS: list[dict] = []
PEAK: list[float] = []  # the matmul peak, measured once in main


def median_time(fn, rounds: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def encoders(size: int, batch: int, rounds: int) -> None:
    spec, rng = spec_of(size), np.random.default_rng(0)
    obs = jax.tree.map(jnp.asarray, random_obs(spec, (batch,), rng))
    for name in ("impala_shared", "resnet_per_camera"):
        enc = make_encoder(name, spec)
        params = enc.init(jax.random.PRNGKey(0), obs)
        fwd = jax.jit(enc.apply)
        grad = jax.jit(jax.grad(lambda p, o: jnp.sum(enc.apply(p, o) ** 2)))
        t_f = median_time(lambda: fwd(params, obs), rounds)
        t_b = median_time(lambda: grad(params, obs), rounds)
        f_f = xla_flops(enc.apply, params, obs)
        f_b = xla_flops(jax.grad(lambda p, o: jnp.sum(enc.apply(p, o) ** 2)), params, obs)
        n_params = sum(x.size for x in jax.tree.leaves(params))
        RESULTS.append({"what": "encoder", "encoder": name, "size": size, "batch": batch, "forward_per_s": batch / t_f,
                        "forward_backward_per_s": batch / t_b, "params": n_params,
                        "forward_gflop": f_f / 1e9, "forward_backward_gflop": f_b / 1e9,
                        "forward_gflops": f_f / t_f / 1e9, "forward_backward_gflops": f_b / t_b / 1e9})
        print(f"  encoder {name:18s} {size}x{size} batch {batch}: forward {batch / t_f:8.0f} obs/s "
              f"({f_f / t_f / 1e9:5.1f} GFLOP/s, {_of_peak(f_f / t_f)}), forward+backward {batch / t_b:8.0f} obs/s "
              f"({f_b / t_b / 1e9:5.1f} GFLOP/s, {_of_peak(f_b / t_b)}) ({n_params:,} params)")


def learner(size: int, batch: int, rounds: int) -> None:
    spec, rng = spec_of(size), np.random.default_rng(0)
    for training, shared in (("frozen_after_bc", True), ("frozen_after_bc", False), ("end_to_end", False)):
        cfg = preset("preview", algo="csilpp", task="lift", obs="image", image_size=size,
                     agent={"n_demo": batch // 2, "n_online": batch // 2}, nets={"encoder_training": training})
        agent = make_agent(cfg, spec, ACT)
        if not shared:  # frozen encoders applied inside every network, as before the shared encoding
            agent = agent._replace(headless=None)
        one = random_obs(spec, (1,), rng)
        pol = agent.policy.init(jax.random.PRNGKey(0), one)
        crit = agent.critic.init(jax.random.PRNGKey(1), one, np.zeros((1, ACT), np.float32))
        n = 2 * batch
        demos = Transitions(obs=random_obs(spec, (n,), rng), action=np.zeros((n, ACT), np.float32),
                            reward=np.zeros(n, np.float32), next_obs=random_obs(spec, (n,), rng),
                            next_action=np.zeros((n, ACT), np.float32), terminal=np.zeros(n, np.float32),
                            last=np.zeros(n, np.float32))
        agent, _ = agent.resolve(pol, demos, jax.random.PRNGKey(2))
        state = init_state(agent, pol, crit)
        utd = cfg.agent.utd
        rows = lambda lead: random_obs(spec, lead, rng)  # noqa: E731
        b = Transitions(obs=rows((utd, batch)), action=np.zeros((utd, batch, ACT), np.float32),
                        reward=np.zeros((utd, batch), np.float32), next_obs=rows((utd, batch)),
                        next_action=np.zeros((utd, batch, ACT), np.float32),
                        terminal=np.zeros((utd, batch), np.float32), last=np.zeros((utd, batch), np.float32))
        b = jax.tree.map(jnp.asarray, b)
        update = make_update(agent)
        key = jax.random.PRNGKey(0)
        t = median_time(lambda: update(state, b, key)[1], rounds)
        # the FLOPs of the function `make_update` jits (on a CPU its UTD steps are unrolled: all counted)
        flops = xla_flops(lambda st, bb, k: one_update(agent, st, bb, k), state, b, key)
        RESULTS.append({"what": "update", "algo": "csilpp", "encoder_training": training, "shared_encoding": shared,
                        "size": size, "batch": batch, "utd": utd, "updates_per_s": 1 / t,
                        "gflop_per_update": flops / 1e9, "gflops": flops / t / 1e9})
        label = training + (" (encoded once)" if shared else " (in every net)" if training == "frozen_after_bc" else "")
        print(f"  CSIL++ update {label:32s} {size}x{size} batch {batch} UTD {utd}: {1 / t:6.2f} updates/s "
              f"({utd / t:6.2f} critic steps/s; {flops / 1e9:.1f} GFLOP each, {flops / t / 1e9:.1f} GFLOP/s, "
              f"{_of_peak(flops / t)})")


def env_steps(size: int, steps: int = 40) -> None:
    from csil_lite.envs.registry import make_env

    for kind in ("state", "image"):
        env = make_env("lift", seed=0, **({"obs": "image", "image_size": size} if kind == "image" else {}))
        env.reset(seed=0)
        t = time.perf_counter()
        for _ in range(steps):
            env.step(np.zeros(ACT, np.float32))
        dt = (time.perf_counter() - t) / steps
        env.close()
        RESULTS.append({"what": "env", "task": "lift", "obs": kind, "size": size, "steps_per_s": 1 / dt})
        print(f"  env lift {kind:5s} {size}x{size}: {1 / dt:7.1f} steps/s ({1000 * dt:.1f} ms/step)")


def _of_peak(flops_per_s: float) -> str:
    return f"{100 * flops_per_s / 1e9 / PEAK[0]:.0f} % of peak" if PEAK else "peak not measured"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 84])
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the numbers as JSON here")
    args = ap.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    PEAK.append(peak_gflops())
    print(f"float32 matmul peak: {PEAK[0]:.1f} GFLOP/s")
    for size in args.sizes:
        print(f"frames {size}x{size}:")
        env_steps(size)
        for batch in args.batch:
            encoders(size, batch, args.rounds)
            learner(size, batch, args.rounds)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": machine_name(), "jax": jax.__version__, "peak_gflops": PEAK[0],
                       "results": RESULTS}, f, indent=1)


if __name__ == "__main__":
    main()
