"""Measuring compute: XLA's FLOP count of a jitted function and this machine's practical matmul peak, so the
benchmarks (benchmarks/learner_throughput.py, benchmarks/pixels_throughput.py) can report GFLOP/s against it."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax


def xla_flops(fn: Callable, *args: Any) -> float:
    """XLA's FLOP count of jit(fn)(*args) from its compiled cost analysis (a loop's body is counted once; NaN when
    the backend does not report it)."""
    try:
        cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    except Exception:  # noqa: BLE001 - a diagnostic only
        return float("nan")
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) if cost and "flops" in cost else float("nan")


def peak_gflops(n: int = 2048, rounds: int = 3) -> float:
    """Best-of-`rounds` float32 matmul rate (n x n by n x n, 2 n^3 FLOPs): this machine's practical peak (on a
    shared machine, a lower bound)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    mm = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(mm(a, a))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(mm(a, a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


__all__ = ["peak_gflops", "xla_flops"]
