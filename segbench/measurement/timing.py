"""Timing one cell the way careful harnesses do (torch.utils.benchmark's blocked_autorange, asv).

1. The first call (trace, XLA compile and first run) is timed on its own: ``compile_s``.
2. Warm-up calls until ``warmup_time`` has passed (at least one).
3. Calibration: the number of calls per round is chosen so that a round lasts at least
   ``min_run_time / min_rounds`` (and at least 1 ms, so that timer overhead is negligible).
4. Rounds until both ``min_run_time`` of timed rounds and ``min_rounds`` are reached, or
   ``max_rounds``. Each round ends with ``sync(result)``: the clock stops only once the device has
   finished. Raw per-call times of every round are kept; median and IQR are reported.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from segbench.measurement.sweep import TimerBudget

# This module imports nothing of segbench at run time: segbench.measurement.worker loads it by path as the
# one timer of an A/B comparison, whichever commit's segbench is being measured.

MIN_ROUND_S = 1e-3  # a round shorter than this would be dominated by timer and loop overhead


@dataclass(frozen=True)
class Measurement:
    """What was measured for one cell: raw per-call times of each round, and the first call."""

    times: tuple[float, ...]  # seconds per call, one entry per round
    calls_per_round: int
    compile_s: float  # the first call alone
    warmup_calls: int

    @property
    def rounds(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.times, [25, 75])
        return float(q3 - q1)

    @property
    def mean(self) -> float:
        return float(np.mean(self.times))

    @property
    def min(self) -> float:
        return float(np.min(self.times))

    def columns(self) -> dict[str, Any]:
        """The timing columns of a results row (see segbench.results.storage.SCHEMA)."""
        return {
            "compile_s": self.compile_s,
            "median_s": self.median,
            "iqr_s": self.iqr,
            "mean_s": self.mean,
            "min_s": self.min,
            "rounds": self.rounds,
            "calls_per_round": self.calls_per_round,
            "raw_times_s": json.dumps([round(t, 12) for t in self.times]),
            "value": self.median,
            "unit": "seconds",
        }

    def __str__(self) -> str:
        return (
            f"median {self.median * 1e3:.3f} ms, IQR {self.iqr * 1e3:.3f} ms "
            f"({self.rounds} rounds x {self.calls_per_round} calls; first call {self.compile_s:.3f} s)"
        )


def measure(
    call: Callable[[], Any],
    sync: Callable[[Any], Any] = lambda result: result,
    budget: TimerBudget | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Time ``call()`` as the module docstring says; ``sync(result)`` blocks until it is done."""
    if budget is None:
        from segbench.measurement.sweep import TimerBudget

        budget = TimerBudget()
    start = clock()
    sync(call())
    compile_s = clock() - start

    start = clock()
    warmup_calls = warm_up(call, sync, budget.warmup_time, clock)
    per_call_guess = (clock() - start) / warmup_calls

    round_target = max(budget.min_run_time / budget.min_rounds, MIN_ROUND_S)
    calls = max(1, math.ceil(round_target / max(per_call_guess, 1e-9)))
    times: list[float] = []
    total = 0.0
    while len(times) < budget.max_rounds:
        start = clock()
        for _ in range(calls):
            result = call()
        sync(result)
        elapsed = clock() - start
        if not times and elapsed < MIN_ROUND_S and calls < 1_000_000:
            # The guess from warm-up was off (e.g. a cold first warm-up call): recalibrate.
            calls = max(calls + 1, math.ceil(calls * round_target / max(elapsed, 1e-9)))
            continue
        times.append(elapsed / calls)
        total += elapsed
        if total >= budget.min_run_time and len(times) >= budget.min_rounds:
            break
    return Measurement(tuple(times), calls, compile_s, warmup_calls)


def warm_up(
    call: Callable[[], Any],
    sync: Callable[[Any], Any],
    seconds: float,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Call (and sync) until ``seconds`` have passed, at least once; returns the number of calls."""
    calls, start = 0, clock()
    while True:
        sync(call())
        calls += 1
        if clock() - start >= seconds:
            return calls


def time_rounds(
    call: Callable[[], Any],
    sync: Callable[[Any], Any],
    calls: int,
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Per-call seconds of ``rounds`` rounds of ``calls`` calls each, synced once per round."""
    times = []
    for _ in range(rounds):
        start = clock()
        for _ in range(calls):
            result = call()
        sync(result)
        times.append((clock() - start) / calls)
    return times


def calls_for(
    call: Callable[[], Any],
    sync: Callable[[Any], Any],
    round_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """How many calls make one round last about ``round_s`` (at least MIN_ROUND_S)."""
    target = max(round_s, MIN_ROUND_S)
    calls = 1
    while True:
        elapsed = time_rounds(call, sync, calls, 1, clock)[0] * calls
        if elapsed >= target / 2 or calls >= 1_000_000:
            return max(1, math.ceil(calls * target / max(elapsed, 1e-9)))
        calls = max(calls * 2, math.ceil(calls * target / 2 / max(elapsed, 1e-9)))
