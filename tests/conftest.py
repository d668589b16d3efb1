"""Shared fixtures: small scenes, and one place that says which mode/formulation pairs exist."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import segbench
from segbench._constants import tolerance

ALL_LOSSES = tuple(segbench.LOSSES)
# The modes this process runs (numpy, TensorFlow: Keras on its TensorFlow backend); the JAX and
# PyTorch modes need Keras started on their backend: tests/test_backends.py runs them in subprocesses.
ALL_MODES = segbench.losses.registry.TENSORFLOW_MODES
ALL_FORMULATIONS = tuple(segbench.FORMULATIONS)


@pytest.fixture(autouse=True)
def _tables_100_columns_wide(monkeypatch):
    """Tables as where there is no terminal (100 columns), whatever runs the tests: a pytest-xdist
    worker's output is a pipe whose width the platform may report otherwise. A test that needs
    another width sets COLUMNS itself."""
    monkeypatch.setenv("COLUMNS", "100")


def formulations_for(mode: str) -> tuple[str, ...]:
    """The formulations that run in ``mode`` (blocked is for graph modes only)."""
    return tuple(f for f in ALL_FORMULATIONS if segbench.losses.registry.runs_in(f, mode))


def to_numpy(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def assert_close_to_oracle(value, expected, dtype: str = "float32", terms: int = 1) -> None:
    tol = tolerance(dtype, terms)
    np.testing.assert_allclose(to_numpy(value).astype(np.float64), expected, rtol=tol["rtol"], atol=tol["atol"])


def assert_gradient_close(grad, expected, dtype: str = "float32") -> None:
    tol = tolerance(dtype)
    scale = max(float(np.abs(expected).max()), np.finfo(np.float64).tiny)
    np.testing.assert_allclose(to_numpy(grad).astype(np.float64), expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def pytest_configure(config: pytest.Config) -> None:
    """Benchmarks time only when asked (--benchmark-only, --benchmark-enable or -m bench); a plain
    run executes each of them once, as a test, so that the suite stays fast."""
    asked = (
        config.getoption("benchmark_only", False)
        or config.getoption("benchmark_enable", False)
        or "bench" in (config.getoption("markexpr", "") or "").replace("not bench", "")
    )
    if not asked:
        config.option.benchmark_disable = True
    else:  # saved results keep every round's time (the raw_times_s column segbench reads back)
        config.option.benchmark_save_data = True


# What pytest-benchmark compares between runs (it warns "machine_info is different" otherwise):
# only what identifies the machine. py-cpuinfo's current clock moves with the load.
_VARYING_CPU_INFO = ("hz_actual", "hz_actual_friendly")


def _run_environment(config: pytest.Config) -> dict:
    """segbench's environment of this session (versions, CPU, BLAS and threads, oneDNN, TensorFlow's
    build, run id, start time and load), collected once."""
    if not hasattr(config, "_segbench_environment"):
        from segbench.measurement import environment
        from segbench.measurement.backends import import_tensorflow_quietly
        from segbench.measurement.sweep import get_profile

        import_tensorflow_quietly()
        profile = get_profile().name  # the timed profile, as tests/bench picks it
        config._segbench_environment = environment.collect(
            uses_tensorflow=True, profile=profile, source="pytest-benchmark"
        )
    return config._segbench_environment


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """machine_info["segbench"]: the machine's identity as segbench checks it
    (segbench.measurement.environment.IDENTITY), where segbench.results.importers.from_pytest_benchmark reads it.
    What changes from run to run on one machine (run id, start time, load average, the CPU's
    current clock) is kept out of machine_info: each benchmark's extra_info["segbench"] has it."""
    from segbench.measurement import environment

    meta = _run_environment(config)
    machine_info["segbench"] = {k: meta[k] for k in environment.IDENTITY if meta.get(k) is not None}
    cpu = machine_info.get("cpu")
    if isinstance(cpu, dict):
        for key in _VARYING_CPU_INFO:
            cpu.pop(key, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A timed benchmark's extra_info["segbench"]: the session's run id, start time, commit and
    variables, and the load average before and after this benchmark."""
    benchmark = getattr(item, "funcargs", {}).get("benchmark")
    if benchmark is None or getattr(benchmark, "disabled", True):
        yield
        return
    from segbench.measurement import environment

    meta = _run_environment(item.config)
    extra = {k: v for k, v in meta.items() if k not in environment.IDENTITY and v is not None}
    extra["load_avg_start"] = environment.load_average()
    yield
    extra["load_avg_end"] = environment.load_average()
    benchmark.extra_info["segbench"] = extra


@pytest.fixture(autouse=True)
def _plugins_variable_restored(monkeypatch):
    """segbench's commands export --plugin to $SEGBENCH_PLUGINS (for their workers); a test's
    command must not hand its plugins to the processes of the tests after it. Setting the variable
    through monkeypatch first makes monkeypatch restore it (or remove it) after the test, however
    the command changed it."""
    monkeypatch.setenv("SEGBENCH_PLUGINS", os.environ.get("SEGBENCH_PLUGINS", ""))
    if not os.environ["SEGBENCH_PLUGINS"]:
        monkeypatch.delenv("SEGBENCH_PLUGINS")


@pytest.fixture(scope="session")
def seed_scene():
    """The seed's scenario: batch 8, background + 3 objects, two missing annotations."""
    return segbench.make_scene(8, 48, 48, 4, missing=2, seed=0)
