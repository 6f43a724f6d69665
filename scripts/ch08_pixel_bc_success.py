"""BC from pixels on Lift, scored by success: chapter 8's preview budget (6 scripted demos at 64 x 64, the last held
out, 200 BC steps of 32) with each image encoder, and BC from the low-dim state on the same 5 demonstrations, each
evaluated over `--episodes` episodes (deterministic actions, fresh episode seeds). Rendering costs ~0.1 s per env
step on a CPU, so this is a script, not a preview cell; the numbers go to book/_artefacts/ch08/bc_success.json.

    python scripts/ch08_pixel_bc_success.py [--episodes 20] [--out book/_artefacts/ch08/bc_success.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from csil_lite.assembly import make_policy
from csil_lite.book import machine_name
from csil_lite.configs import preset
from csil_lite.envs.registry import make_env
from csil_lite.evaluation import evaluate
from csil_lite.loop import load_demos
from csil_lite.pixels import bc_from_pixels, make_image_demos, split_episodes

N_DEMOS, SIZE, STEPS, BATCH = 6, 64, 200, 32


def score(policy, params, env, episodes: int) -> dict:
    mean_action = jax.jit(lambda p, o: jnp.tanh(policy.apply(p, o)[0]))
    t = time.perf_counter()
    out = evaluate(env, lambda obs: np.asarray(mean_action(params, jax.tree.map(jnp.asarray, obs))),
                   episodes=episodes, seed=1)
    return {**out, "eval_seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--out", default="book/_artefacts/ch08/bc_success.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ch08_success_"))
    demo_file = make_image_demos("lift", N_DEMOS, work / "lift_images.hdf5", seed=0, image_size=SIZE)
    results = {}
    for obs, encoders in (("image", ("impala_shared", "resnet_per_camera")), ("state", ("flatten",))):
        cfg = preset("preview", algo="csilpp", task="lift", obs=obs, image_size=SIZE, demos_path=str(demo_file),
                     num_demos=N_DEMOS)
        demos = load_demos(cfg)
        train, held = split_episodes(demos, 1)
        env = make_env("lift", seed=1, **({"obs": "image", "image_size": SIZE} if obs == "image" else {}))
        for encoder in encoders:
            c = preset("preview", algo="csilpp", task="lift", obs=obs, image_size=SIZE, nets={"encoder": encoder})
            policy = make_policy(c.nets, demos.act_dim, demos.obs_spec)
            bc = bc_from_pixels(policy, train, held, steps=STEPS, seed=0, batch_size=BATCH, every=STEPS // 5)
            results[f"{obs}/{encoder}"] = {"held_out_error": float(bc.held_out[-1]),
                                           **score(policy, bc.params, env, args.episodes)}
            print(f"{obs}/{encoder}: {results[f'{obs}/{encoder}']}", flush=True)
        env.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine_name(), "demos": N_DEMOS, "held_out": 1,
                                          "image_size": SIZE, "bc_steps": STEPS, "batch": BATCH,
                                          "episodes": args.episodes, "results": results}, indent=1))


if __name__ == "__main__":
    main()
