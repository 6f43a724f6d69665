"""Latency of a base policy in-process vs over a loopback websocket, under 1 and 8 concurrent clients.

    python benchmarks/base_latency.py                                   # a stand-in with Lift's shapes (19 -> 10 x 7)
    python benchmarks/base_latency.py --checkpoint book/_artefacts/base/lift_10000 --requests 500

What it prints (one row per setting): p50 / p99 latency per request in ms and requests/s, for
(1) the stand-in called in-process, (2) `csil-lite serve` (a separate process) with one client, (3) the same
server with 8 concurrent clients x `--requests` each, and the cost per env step of a chunked base at N = 10
(`ChunkExecutor`, one query every 10 steps) in-process and remote. Every request carries a request id that the
server echoes; the load test checks that each reply carries the id of its request and that none is missing.
The goal of issue 21: loopback p99 within 5 ms of in-process with one client; during the load test the server
also answers /healthz (its latency under load is printed: a server that blocked on inference would stall it).

Results when written (lift_10000 stand-in, 2 CPUs shared with other jobs, load average 5-6; two runs):
in-process p50 0.50-0.67 ms / p99 0.57-0.80 ms; loopback 1 client p50 1.24-1.56 ms / p99 2.0-6.4 ms (p99 gap
1.4 and 5.6 ms); 8 clients x 200: 1600/1600 replies matched by id, p50 8.6-9.6 ms / p99 18-21 ms, ~805 req/s;
/healthz under that load p99 16-17 ms; chunked base at N = 10: 106-110 us per env step in-process, 203-260 us
over loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def _pct(ms: list[float]) -> tuple[float, float]:
    a = np.asarray(ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _row(name: str, ms: list[float], seconds: float, n: int) -> dict:
    p50, p99 = _pct(ms)
    print(f"{name:<38} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {n / seconds:8.0f} req/s   (n={n})", flush=True)
    return {"name": name, "p50_ms": p50, "p99_ms": p99, "req_per_s": n / seconds, "n": n}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(rng: np.random.Generator, obs_dim: int, rid: int) -> dict:
    from csil_lite.base.policy import LOWDIM_KEY

    return {LOWDIM_KEY: rng.standard_normal(obs_dim).astype(np.float32), "request_id": rid}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="stand-in directory (default: an untrained stand-in of Lift's shapes)")
    p.add_argument("--requests", type=int, default=200, help="requests per client")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000, help="env steps for the per-step cost at N = 10")
    p.add_argument("--json", help="write the rows to this file")
    args = p.parse_args()

    from csil_lite.base import standin as si
    from csil_lite.base.client import RemoteBasePolicy
    from csil_lite.base.policy import ChunkExecutor

    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint
    if ckpt is None:
        cfg = si.StandInConfig(obs_dim=19, action_dim=7)
        pol = si.StandInPolicy(cfg, si.init_params(cfg), np.zeros(19), np.ones(19), task="lift")
        ckpt = si.save_standin(Path(tmp.name) / "standin", pol)
    policy = si.load_standin(ckpt)
    obs_dim = policy.cfg.obs_dim
    print(f"stand-in {si.num_params(policy.params)} parameters, obs {obs_dim}, chunk [{policy.cfg.horizon}, "
          f"{policy.cfg.action_dim}], {os.cpu_count()} CPUs", flush=True)
    rng = np.random.default_rng(0)
    rows = []

    # (1) in-process
    def plain(i: int) -> dict:  # the in-process policy gets no request id (the server strips it)
        return {k: v for k, v in _request(rng, obs_dim, i).items() if k != "request_id"}

    for i in range(20):
        policy.infer(plain(i))
    ms, t0 = [], time.perf_counter()
    for i in range(args.requests):
        req = plain(i)
        t = time.perf_counter()
        policy.infer(req)
        ms.append(1e3 * (time.perf_counter() - t))
    rows.append(_row("in-process", ms, time.perf_counter() - t0, args.requests))

    # the server: `csil-lite serve` in its own process
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "csil_lite.cli", "serve", "--checkpoint", str(ckpt),
                               "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # (2) one client
        with RemoteBasePolicy("127.0.0.1", port, wait=120) as client:
            for i in range(20):
                client.infer(_request(rng, obs_dim, i))
            ms, t0 = [], time.perf_counter()
            for i in range(args.requests):
                t = time.perf_counter()
                reply = client.infer(_request(rng, obs_dim, i))
                ms.append(1e3 * (time.perf_counter() - t))
                assert reply["request_id"] == i, (reply["request_id"], i)
            rows.append(_row("loopback, 1 client", ms, time.perf_counter() - t0, args.requests))
            gap = rows[-1]["p99_ms"] - rows[0]["p99_ms"]
            print(f"  loopback p99 - in-process p99 = {gap:.3f} ms (goal: <= 5 ms)", flush=True)

        # (3) concurrent clients, replies matched to requests by id
        per_client: list[list[float]] = [[] for _ in range(args.clients)]
        seen: list[list[int]] = [[] for _ in range(args.clients)]
        errors: list[str] = []
        clients = [RemoteBasePolicy("127.0.0.1", port, wait=10) for _ in range(args.clients)]
        barrier = threading.Barrier(args.clients + 1)

        def work(c: int) -> None:
            r = np.random.default_rng(100 + c)
            barrier.wait()
            for i in range(args.requests):
                rid = c * 1_000_000 + i
                t = time.perf_counter()
                try:
                    reply = clients[c].infer(_request(r, obs_dim, rid))
                except Exception as e:  # counted as dropped
                    errors.append(f"client {c} request {i}: {e}")
                    return
                per_client[c].append(1e3 * (time.perf_counter() - t))
                seen[c].append(int(reply["request_id"]))

        health_ms: list[float] = []
        stop = threading.Event()

        def health() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
                    assert resp.status == 200
                health_ms.append(1e3 * (time.perf_counter() - t))
                time.sleep(0.01)

        threads = [threading.Thread(target=work, args=(c,)) for c in range(args.clients)]
        for t in threads:
            t.start()
        hthread = threading.Thread(target=health)
        barrier.wait()
        t0 = time.perf_counter()
        hthread.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        stop.set()
        hthread.join()
        total = args.clients * args.requests
        matched = sum(s == [c * 1_000_000 + i for i in range(args.requests)] for c, s in enumerate(seen))
        got = sum(len(s) for s in seen)
        rows.append(_row(f"loopback, {args.clients} clients", [m for ms_ in per_client for m in ms_], seconds, got))
        print(f"  replies {got}/{total}, clients whose replies all matched their request ids in order: "
              f"{matched}/{args.clients}, errors {len(errors)}", flush=True)
        if health_ms:
            rows.append(_row("  /healthz during the load test", health_ms, seconds, len(health_ms)))
        for c in clients:
            c.close()
        if got != total or matched != args.clients or errors:
            raise SystemExit(f"load test failed: {errors[:3]}")

        # (4) cost per env step at N = 10
        for name, base in (("in-process", policy), ("loopback", RemoteBasePolicy("127.0.0.1", port, wait=10))):
            ex = ChunkExecutor(base, 10, make_request=lambda o: {"observation/lowdim": o})
            ex.reset()
            o = rng.standard_normal(obs_dim).astype(np.float32)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                ex.step(o)
            us = 1e6 * (time.perf_counter() - t0) / args.steps
            print(f"chunked base (N = 10), {name:<11} {us:8.1f} us per env step ({ex.queries} queries in "
                  f"{args.steps} steps)", flush=True)
            rows.append({"name": f"per env step, N=10, {name}", "us_per_step": us, "queries": ex.queries})
    finally:
        server.terminate()
        server.wait(10)
        tmp.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
