"""Shared fixtures: small scenes, and one place that says which mode/formulation pairs exist."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import segbench
from segbench._constants import tolerance

ALL_LOSSES = tuple(segbench.LOSSES)
ALL_MODES = tuple(segbench.MODES)
ALL_FORMULATIONS = tuple(segbench.FORMULATIONS)


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


@pytest.fixture(scope="session")
def seed_scene():
    """The seed's scenario: batch 8, background + 3 objects, two missing annotations."""
    return segbench.make_scene(8, 48, 48, 4, missing=2, seed=0)
