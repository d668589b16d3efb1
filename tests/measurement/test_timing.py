import time

import pytest

from segbench.measurement.sweep import TimerBudget
from segbench.measurement.timing import MIN_ROUND_S, Measurement, measure


class FakeClock:
    """A clock that only moves when the timed function says so: exact, cannot flake."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_known_duration_with_fake_clock():
    clock = FakeClock()
    calls = []

    def work():
        calls.append(1)
        clock.now += 0.002 if len(calls) > 1 else 0.5  # first call: "compile"

    m = measure(work, budget=TimerBudget(min_run_time=0.1, min_rounds=5, max_rounds=100, warmup_time=0.01), clock=clock)
    assert m.compile_s == pytest.approx(0.5)
    assert m.median == pytest.approx(0.002)
    assert m.iqr == pytest.approx(0.0)
    # rounds of >= 0.1/5 s: 10 calls of 2 ms
    assert m.calls_per_round == 10
    assert m.rounds == 5
    assert m.warmup_calls == 5
    assert len(calls) == 1 + m.warmup_calls + m.rounds * m.calls_per_round


def test_rounds_until_min_run_time_and_min_rounds():
    clock = FakeClock()

    def work():
        clock.now += 0.05

    m = measure(work, budget=TimerBudget(min_run_time=1.0, min_rounds=3, max_rounds=100, warmup_time=0.0), clock=clock)
    assert m.calls_per_round == 7  # ceil((1.0 / 3) / 0.05)
    assert m.rounds == 3  # 3 rounds x 0.35 s >= 1 s


def test_max_rounds_caps_the_time():
    clock = FakeClock()

    def work():
        clock.now += 1.0

    m = measure(work, budget=TimerBudget(min_run_time=1.0, min_rounds=10, max_rounds=4, warmup_time=0.0), clock=clock)
    assert m.rounds == 4 and m.calls_per_round == 1


def test_fast_calls_are_batched_so_rounds_are_long_enough():
    clock = FakeClock()

    def work():
        clock.now += 1e-7

    m = measure(work, budget=TimerBudget(min_run_time=0.0, min_rounds=1, max_rounds=3, warmup_time=0.0), clock=clock)
    assert m.calls_per_round * 1e-7 >= MIN_ROUND_S * 0.999


def test_sync_is_called_before_the_clock_stops():
    clock = FakeClock()
    log = []

    def work():
        log.append("call")
        return "result"

    def sync(result):
        log.append("sync")
        clock.now += 0.01  # the device finishes only when synchronised
        assert result == "result"

    m = measure(work, sync, TimerBudget(min_run_time=0.05, min_rounds=5, max_rounds=5, warmup_time=0.0), clock=clock)
    assert m.median == pytest.approx(0.01 / m.calls_per_round)
    assert log[:2] == ["call", "sync"]


def test_real_clock_busy_wait_of_known_duration():
    duration = 0.002

    def spin():
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            pass

    m = measure(spin, budget=TimerBudget(min_run_time=0.05, min_rounds=5, max_rounds=50, warmup_time=0.0))
    # A busy wait can only take longer than asked (preemption); never shorter.
    assert m.min >= duration
    assert m.median < duration * 5
    assert len(m.times) == m.rounds >= 5


def test_measurement_statistics():
    m = Measurement(times=(1.0, 2.0, 3.0, 4.0, 100.0), calls_per_round=1, compile_s=0.0, warmup_calls=1)
    assert m.median == 3.0
    assert m.iqr == 2.0  # 4 - 2
    assert m.min == 1.0
    assert "median 3000.000 ms" in str(m)
