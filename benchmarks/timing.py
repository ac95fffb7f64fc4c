"""Timing helpers the benchmarks share: one call timed, and variants timed round-robin.

Round-robin (one call of each variant per round, after ``warmup`` untimed rounds) spreads the load of other
processes on a shared machine evenly over the variants, so their ratio stays meaningful; report the median.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(fn: Callable[[], object], sync: Callable[[], object] | None = None) -> float:
    """Seconds one call of ``fn`` takes (``sync()`` after it: e.g. ``torch.cuda.synchronize``)."""
    t0 = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - t0


def round_robin(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                sync: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """{name: [seconds per round]} of each of ``fns``, called once per round in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if sync is not None:
        sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(timed(fn, sync))
    return times
