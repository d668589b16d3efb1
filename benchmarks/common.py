"""What every asv benchmark shares: the profile's params, and a case ready to time.

Params come from the one sweep definition (``segbench.measurement.sweep``); ``SEGBENCH_PROFILE`` picks the
profile (default: "default"; ``backends`` and ``tiny`` have the JAX and PyTorch modes, whose
``mode`` param names the backend: jax, jax-jit, torch, torch-compile). TensorFlow is imported
here, once, where it is installed, so that asv's forkserver keeps a warm import for every
benchmark process; importing it does not initialise its runtime, which happens in each forked
process's setup. Without TensorFlow the TensorFlow cells are skipped and the others run.
"""

from __future__ import annotations

import functools
import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if importlib.util.find_spec("tensorflow") is not None:
    import tensorflow  # noqa: F401  (warm import, see the docstring)

from segbench.losses import plugins
from segbench.measurement.sweep import Case, PreparedCase, Profile, get_profile

plugins.load_all()  # losses of installed packages and of $SEGBENCH_PLUGINS (asv runs fresh processes)
PROFILE: Profile = get_profile()
SWEEP = PROFILE.resolved_sweep()

# The profile is a parameter (one value) so that every asv result records which sweep it belongs
# to; a matrix variable (env_nobuild) would also record it but would override $SEGBENCH_PROFILE.
PARAM_NAMES = ["loss", "formulation", "mode", "pass", "batch", "resolution", "classes", "dtype", "profile"]
PARAMS = [
    list(SWEEP.losses),
    list(SWEEP.formulations),
    list(SWEEP.modes),
    list(SWEEP.passes),
    list(SWEEP.batches),
    [f"{h}x{w}" for h, w in SWEEP.resolutions],
    list(SWEEP.classes),
    list(SWEEP.dtypes),
    [PROFILE.name],
]
LARGEST = (max(SWEEP.batches), *max(SWEEP.resolutions, key=lambda r: r[0] * r[1]))
"""(batch, height, width) of the profile's largest shape."""


def params_with(**fixed: list) -> list[list]:
    """The sweep's params with some dimensions narrowed: every benchmark keeps all PARAM_NAMES,
    so each result says exactly which cell it is (and segbench.results.importers maps any of them)."""
    return [fixed.get(name, values) for name, values in zip(PARAM_NAMES, PARAMS, strict=True)]


def largest_shape() -> dict[str, list]:
    batch, height, width = LARGEST
    return {"batch": [batch], "resolution": [f"{height}x{width}"], "classes": [SWEEP.classes[0]]}


def make_case(loss, formulation, mode, pass_, batch, resolution, classes, dtype, profile=None) -> Case:
    """The sweep's case for these asv params; NotImplementedError (asv's skip) if it cannot run.
    ``profile`` only labels the result (the params come from the profile already)."""
    height, width = (int(v) for v in resolution.split("x"))
    case = Case(int(batch), height, width, int(classes), dtype, loss, formulation, mode, pass_)
    reason = case.unsupported_reason() or keras_backend_for(case)
    if reason:
        raise NotImplementedError(reason)
    return case


def keras_backend_for(case: Case) -> str | None:
    """Each asv benchmark runs in a process forked from asv's server, which has not imported Keras:
    a cell of a Keras loss sets KERAS_BACKEND to its mode's backend (jax, torch, tensorflow) before
    Keras is imported. Why the cell cannot run here, or None (a backend not installed: asv's skip)."""
    import sys

    from segbench.losses.registry import BACKEND_LABELS, MODES, process_keras_backend, uses_keras

    backend = MODES[case.mode].backend
    if importlib.util.find_spec(backend) is None:
        return f"{BACKEND_LABELS[backend]} is not installed"
    if uses_keras(case.loss, case.formulation, backend):
        if "keras" not in sys.modules:
            os.environ["KERAS_BACKEND"] = backend
        elif process_keras_backend() != backend:
            return f"this process's Keras runs on {process_keras_backend()}, the cell needs {backend}"
    return None


@functools.lru_cache(maxsize=4)
def prepare(*params) -> PreparedCase:
    """The case for these params on the default device, first call made; cached per process.

    asv 0.6.6 runs ``setup`` again before every timed call (asv#966). Building the case there each
    time would make every sample time the second call of a freshly traced function, which is
    several times slower than a warm call; the cache makes a repeated setup a lookup. Each
    parameter runs in its own process, so nothing leaks between cells.
    """
    return make_case(*params).prepare()
