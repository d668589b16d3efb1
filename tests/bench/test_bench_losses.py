"""pytest-benchmark over the shared sweep: every case of the profile, grouped so that the modes of
one loss and shape sit side by side.

A plain ``pytest`` run executes each case once as a test (benchmarking disabled, tiny profile) and
checks its value against the oracle. ``pytest -m bench --benchmark-only`` times them, on the profile
in ``SEGBENCH_PROFILE`` (default: default), with explicit warm-up rounds: pytest-benchmark does no
warm-up on CPython, so the first call's trace and XLA compile would otherwise be timed.
"""

from __future__ import annotations

import math

import pytest

from segbench._constants import tolerance
from segbench.losses import oracle
from segbench.measurement.sweep import TimerBudget, get_profile

WARMUP_ROUNDS = 5


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        timing = not metafunc.config.getoption("benchmark_disable")
        from segbench.losses import plugins

        plugins.load_all()  # $SEGBENCH_PLUGINS and installed packages' losses
        profile = get_profile(None if timing else "tiny")
        cases = profile.resolved_sweep().cases()
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])
        metafunc.parametrize("profile", [profile], ids=[profile.name])


def calls_per_round(prepared, budget: TimerBudget) -> int:
    """Enough calls per round that a round lasts min_run_time / min_rounds (as segbench run does)."""
    import time

    start = time.perf_counter()
    prepared.call()
    per_call = max(time.perf_counter() - start, 1e-7)
    return max(1, math.ceil(max(budget.min_run_time / budget.min_rounds, 1e-3) / per_call))


@pytest.mark.bench
def test_loss(benchmark, case, profile):
    from segbench.losses.registry import MODES, process_keras_backend, uses_keras

    backend = MODES[case.mode].backend
    pytest.importorskip(backend)
    if uses_keras(case.loss, case.formulation, backend) and process_keras_backend() != backend:
        # Keras runs one backend per process: KERAS_BACKEND=jax (or torch) pytest -m bench times those cells
        pytest.skip(f"Keras runs on {process_keras_backend()} in this process; set KERAS_BACKEND={backend}")
    budget = profile.budget
    prepared = case.prepare()  # inputs on the device; first call (trace + compile) made here
    # The modes of one cell side by side in a group; every name says the whole cell, so that a
    # --benchmark-compare-fail line names the loss, formulation, mode, pass and shape.
    benchmark.group = case.name.replace(f"/{case.mode}/", "/*/")
    benchmark.name = case.name
    benchmark.extra_info["case"] = case.key()
    benchmark.extra_info["backend"] = backend
    benchmark.extra_info["loss_value"] = prepared.first_value
    benchmark.extra_info["compile_s"] = prepared.first_call_s
    benchmark.extra_info["profile"] = profile.name
    benchmark.extra_info["device"] = f"{prepared.device.kind}:{prepared.device.index}"
    benchmark.extra_info["device_name"] = prepared.device.name
    value = benchmark.pedantic(
        prepared.call,
        warmup_rounds=WARMUP_ROUNDS,
        rounds=budget.min_rounds,
        iterations=calls_per_round(prepared, budget),
    )
    expected = oracle.loss_value(case.loss, prepared.scene.y_true, prepared.scene.y_pred)
    tol = tolerance(case.dtype, terms=case.pixels)
    assert value == pytest.approx(expected, rel=tol["rtol"], abs=tol["atol"])
