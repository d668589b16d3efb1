"""Measuring cells inside a worker process: the read ceiling, the oracle's columns, one row per cell.

A worker (segbench.measurement.worker) holds one :class:`Runner` per device and budget; it makes
each shape's inputs once, measures the shape's read ceiling (the fastest of several read
kernels) and float64 oracle once, then times each cell of that shape. Nothing here runs in the
supervising process of ``segbench run`` (segbench.measurement.runner).
"""

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segbench._constants import compute_dtype
from segbench.losses import tolerances
from segbench.losses.registry import MODES
from segbench.measurement import device as devices
from segbench.measurement.sweep import (
    Case,
    TimerBudget,
)
from segbench.measurement.timing import Measurement, measure, time_rounds, warm_up

ORACLE_MAX_ELEMENTS = 2**25  # beyond this the oracle works in chunks within the inputs' size (below the loss's peak)
# Peak memory of one call beyond its inputs, in input-sized arrays (one input: N*H*W*C in the
# compute dtype), the largest over losses and formulations, measured by `segbench run` (the
# peak_mem_bytes column: TensorFlow's allocator peak, tracemalloc for numpy) at batch 16, 512x512,
# C=4, float32, in results/published/intel-xeon/default, rounded up.
PEAK_INPUTS = {
    ("numpy", "forward"): 2.5,
    ("numpy", "forward+backward"): 4.0,
    ("eager", "forward"): 3.5,
    ("eager", "forward+backward"): 10.0,
    ("function", "forward"): 2.5,
    ("function", "forward+backward"): 6.0,
    ("xla", "forward"): 1.0,
    ("xla", "forward+backward"): 5.0,
}
ORACLE_PEAK_INPUTS = 7.5  # the float64 oracle's peak in float32 inputs (tracemalloc: 7.25 for every loss)
UNKNOWN_MODE_PEAK_INPUTS = 10.0  # a mode measured nowhere yet: the largest factor above


def memory_needed(case: Case) -> int:
    """Host bytes a cell needs at its peak: the scene (y_true, y_pred), their copies on the device
    for TensorFlow, and the larger of the loss's peak and the oracle's (they do not overlap)."""
    from segbench.losses.scenes import _numpy_dtype

    itemsize = _numpy_dtype(case.dtype).itemsize
    one_input = case.pixels * case.classes * itemsize
    compute_input = case.pixels * case.classes * np.dtype(compute_dtype(case.dtype)).itemsize
    resident = 2 * one_input * (2 if MODES[case.mode].backend != "numpy" else 1)
    loss_peak = PEAK_INPUTS.get((case.mode, case.pass_), UNKNOWN_MODE_PEAK_INPUTS) * compute_input
    elements = case.pixels * case.classes
    oracle_peak = ORACLE_PEAK_INPUTS * elements * 4 if elements <= ORACLE_MAX_ELEMENTS else 0  # float32 inputs
    return int(resident + max(loss_peak, oracle_peak))


@dataclass(frozen=True)
class Ceiling:
    """The memory-read ceiling: the fastest way found to read both inputs once, in GB/s."""

    gb_per_s: float
    method: str


def _read_inputs_numpy(y_true: np.ndarray, y_pred: np.ndarray) -> Callable[[], Any]:
    return lambda: y_true.sum() + y_pred.sum()


READ_BLOCKS = 16  # the blocked formulation's block count at C=4 (segbench.losses.tf_impl)


def _tensorflow_read_kernels(
    device: devices.Device, pixels_per_image: int = 0
) -> dict[str, tuple[Callable[[Any, Any], Any], int]]:
    """TensorFlow kernels that read both inputs once, each with how many times it moves them.

    Eager ``reduce_sum`` runs Eigen's multi-threaded reduction (on the CPU, often the fastest read
    of all); the graph and XLA variants are candidates too, since each mode may read memory its
    own way. On a GPU a device copy (read once, written once: twice the bytes) is one more.
    """
    import tensorflow as tf

    def reduce_sum(a: Any, b: Any) -> Any:
        return tf.reduce_sum(a) + tf.reduce_sum(b)

    def column_sums(a: Any, b: Any) -> Any:  # XLA's column reduction: rows read in order
        columns = a.shape[-2] * a.shape[-1]
        return tf.reduce_sum(tf.reshape(a, [-1, columns]), axis=0) + tf.reduce_sum(tf.reshape(b, [-1, columns]), axis=0)

    def interleaved_blocks(a: Any, b: Any) -> Any:
        """The read of the blocked formulation without its arithmetic: 16 interleaved blocks of
        8-pixel groups added elementwise in one loop fusion over both cores; on the AMD EPYC it
        read faster than every reduction (27 GB/s against 26 for numpy's sum, 13 for XLA's)."""
        n, group = a.shape[0], 8 * a.shape[-1]
        x, y = tf.reshape(a, [n, -1, READ_BLOCKS, group]), tf.reshape(b, [n, -1, READ_BLOCKS, group])
        total = x[:, :, 0] + y[:, :, 0]
        for block in range(1, READ_BLOCKS):
            total = total + x[:, :, block] + y[:, :, block]
        return tf.reduce_sum(total)

    kernels = {
        "tf eager reduce_sum": (reduce_sum, 1),
        "tf.function reduce_sum": (tf.function(reduce_sum), 1),
        "xla reduce_sum": (tf.function(reduce_sum, jit_compile=True), 1),
        "xla max over C, then max": (
            tf.function(lambda a, b: tf.reduce_max(tf.reduce_max(tf.maximum(a, b), axis=-1)), jit_compile=True),
            1,
        ),
    }
    kernels["xla column sums"] = (tf.function(column_sums, jit_compile=True), 1)
    if pixels_per_image % (8 * READ_BLOCKS) == 0:
        kernels["xla interleaved blocks"] = (tf.function(interleaved_blocks, jit_compile=True), 1)
    if device.is_gpu:
        kernels["gpu device copy"] = (lambda a, b: (tf.identity(a + 0), tf.identity(b + 0))[1], 2)
    return kernels


def _jax_read_kernels(device: devices.Device) -> dict[str, tuple[Callable[[Any, Any], Any], int]]:
    """JAX kernels that read both inputs once: eager jnp.sum, and the same under jax.jit."""
    import jax
    import jax.numpy as jnp

    def reduce_sum(a: Any, b: Any) -> Any:
        return jnp.sum(a) + jnp.sum(b)

    return {"jax eager sum": (reduce_sum, 1), "jax.jit sum": (jax.jit(reduce_sum), 1)}


def _torch_read_kernels(device: devices.Device) -> dict[str, tuple[Callable[[Any, Any], Any], int]]:
    """PyTorch kernels that read both inputs once (no autograd recorded)."""
    import torch

    def reduce_sum(a: Any, b: Any) -> Any:
        with torch.no_grad():
            return a.sum() + b.sum()

    return {"torch sum": (reduce_sum, 1)}


_READ_KERNELS = {"tensorflow": _tensorflow_read_kernels, "jax": _jax_read_kernels, "torch": _torch_read_kernels}
_READ_LABELS = {"tensorflow": "tf", "jax": "jax", "torch": "torch"}


def backend_version(backend: str) -> str | None:
    """The version of the library that runs ``backend`` (imported already by its worker), with Keras'."""
    module = sys.modules.get({"numpy": "numpy", "tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
    if module is None:
        return None
    version = getattr(module, "__version__", None)
    if backend == "jax" and "jaxlib" in sys.modules:
        version = f"{version} (jaxlib {sys.modules['jaxlib'].__version__})"
    if "keras" in sys.modules:
        version = f"{version}; keras {sys.modules['keras'].__version__}"
    return version


def measure_ceiling(
    scene: Any, device: devices.Device, budget: TimerBudget, uses_tensorflow: bool = True, backend: str | None = None
) -> Ceiling:
    """Time reading y_true and y_pred once, the fastest way found: the ceiling every loss is held to.

    Candidates: numpy's sum of each (on the CPU) and the read kernels of the worker's backend
    (:func:`_tensorflow_read_kernels`, :func:`_jax_read_kernels`, :func:`_torch_read_kernels`); the
    fastest is the ceiling, and its name is stored with it. ``segbench run`` asks every backend's
    worker and takes the fastest of all. A cell measured above the ceiling (beyond noise) means a
    faster read exists: the run says so.
    """
    nbytes = scene.y_true.nbytes + scene.y_pred.nbytes
    rates: dict[str, float] = {}
    if not device.is_gpu and scene.y_true.dtype.name != "bfloat16":
        rates["numpy sum"] = nbytes / measure(_read_inputs_numpy(scene.y_true, scene.y_pred), budget=budget).median
    if backend in ("jax", "torch"):
        y_true, y_pred = devices.place(scene.y_true, device, backend), devices.place(scene.y_pred, device, backend)
        sync = devices.synchronizer(device, backend)
        with devices.on(device, backend):
            for name, (kernel, passes) in _READ_KERNELS[backend](device).items():
                median = measure(lambda kernel=kernel: kernel(y_true, y_pred), sync, budget).median
                rates[name] = passes * nbytes / median
    elif uses_tensorflow:
        y_true = devices.place(scene.y_true, device, "tensorflow")
        y_pred = devices.place(scene.y_pred, device, "tensorflow")
        sync = devices.synchronizer(device, "tensorflow")
        with devices.on(device, "tensorflow"):
            pixels = int(np.prod(scene.y_true.shape[1:3]))
            for name, (kernel, passes) in _tensorflow_read_kernels(device, pixels).items():
                median = measure(lambda kernel=kernel: kernel(y_true, y_pred), sync, budget).median
                rates[name] = passes * nbytes / median
    method = max(rates, key=rates.get)
    return Ceiling(rates[method] / 1e9, method)


def bytes_moved(case: Case, scene: Any) -> int:
    """The least a cell must move: read both inputs once; write the gradient once if asked."""
    moved = scene.y_true.nbytes + scene.y_pred.nbytes
    return moved + (scene.y_pred.nbytes if case.gradient else 0)


def failure_columns(kind: str, message: str) -> dict[str, str]:
    """``status`` (oom or error) and ``error`` (its first line) of a cell that raised ``kind``."""
    oom = kind in ("MemoryError", "ResourceExhaustedError") or "out of memory" in message.lower()
    text = f"{kind}: {message}".strip()
    return {"status": "oom" if oom else "error", "error": text.splitlines()[0][:500] if text else kind}


def _failure(error: BaseException) -> dict[str, str]:
    return failure_columns(type(error).__name__, str(error))


def _host_memory_available() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def oracle_columns(value: float, expected: float | None, case: Case) -> dict[str, Any]:
    """How far a cell's loss is from the float64 oracle, and whether that is within the tolerance
    of its dtype, mode and loss for a mean (segbench.losses.tolerances.for_mean); NA when no oracle."""
    if expected is None:
        return {"oracle_abs_diff": None, "oracle_rtol": None, "within_tolerance": None}
    tol = tolerances.for_mean(case.dtype, case.mode, case.loss, case.pixels, case.classes, case.formulation)
    diff = abs(value - expected)
    return {
        "oracle_abs_diff": diff,
        "oracle_rtol": tol["rtol"],
        "within_tolerance": tolerances.within(value, expected, tol),
    }


class Runner:
    """Measures cells one by one into a ResultWriter; keeps per-shape inputs, oracle and ceiling."""

    def __init__(self, device: devices.Device, budget: TimerBudget, uses_tensorflow: bool, backend: str | None = None):
        self.device = device
        self.cpu = devices.resolve("cpu")
        self.budget = budget
        self.backend = backend  # the backend this runner's worker serves; None: numpy and TensorFlow
        self.uses_tensorflow = uses_tensorflow and backend in (None, "tensorflow")
        self._ceilings: dict[tuple, Ceiling] = {}
        self._oracle: dict[tuple, float | None] = {}

    def ceiling(self, case: Case, scene: Any) -> Ceiling:
        key = (case.shape, case.dtype)
        if key not in self._ceilings:
            self._ceilings[key] = measure_ceiling(scene, self.device, self.budget, self.uses_tensorflow, self.backend)
        return self._ceilings[key]

    def oracle(self, case: Case, scene: Any) -> float | None:
        key = (case.loss, case.shape, case.dtype, MODES[case.mode].backend)
        if key not in self._oracle:  # any shape: the oracle works a chunk of images at a time
            from segbench.losses import oracle

            backend = MODES[case.mode].backend  # a user's loss without numpy: its own backend in float64
            self._oracle[key] = float(oracle.loss_value(case.loss, scene.y_true, scene.y_pred, backend=backend))
        return self._oracle[key]

    def measure_cell(self, case: Case, ceiling: dict[str, Any] | None = None) -> dict[str, Any]:
        """One row; ``ceiling`` (gb_per_s, method) replaces this worker's own when given."""
        backend = MODES[case.mode].backend
        device = self.device if backend != "numpy" else self.cpu  # numpy: the host
        row: dict[str, Any] = {
            **case.key(),
            "backend": backend,
            "backend_version": backend_version(backend),
            "benchmark": "segbench run",
            "device": f"{device.kind}:{device.index}",
            "device_name": device.name,
        }
        available = _host_memory_available()
        needed = memory_needed(case)
        if available is not None and needed > available:
            return {
                **row,
                "status": "oom",
                "error": f"skipped: needs about {needed / 2**30:.1f} GiB of host memory, "
                f"{available / 2**30:.1f} GiB available",
            }
        try:
            row.update(self._measure(case, ceiling))
            row["status"] = "ok"
            row["backend_version"] = backend_version(backend)  # now with Keras' where the cell imported it
        except KeyboardInterrupt:
            raise
        except Exception as error:  # a failing cell is a result too: record it and go on
            row.update(_failure(error))
        return row

    def revisit(self, case: Case, calls: int, rounds: int) -> dict[str, Any]:
        """A later visit of a cell: build it afresh (its first call timed), warm it up, and time
        ``rounds`` rounds of ``calls`` calls, as many per round as in its first visit."""
        row: dict[str, Any] = {**case.key(), "backend": MODES[case.mode].backend, "benchmark": "segbench run"}
        try:
            prepared = case.prepare(self.device, warm=False)
            with prepared.scope():
                start = time.perf_counter()
                prepared.sync(prepared.run())
                first_call_s = time.perf_counter() - start
                warmup = warm_up(prepared.run, prepared.sync, self.budget.warmup_time)
                times = time_rounds(prepared.run, prepared.sync, calls, rounds)
            row.update(Measurement(tuple(times), calls, first_call_s, warmup).columns(), status="ok")
        except Exception as error:
            row.update(_failure(error))
        return row

    def _measure(self, case: Case, found: dict[str, Any] | None = None) -> dict[str, Any]:
        # The shape's heavy work first (the float64 oracle, the ceiling's kernels): done between two
        # timings it disturbed the next cell's (its large allocations and frees change how memory is
        # handed out for a while; A/A runs showed the first cell after it 9% off, others 2-3%).
        scene = case.scene()
        ceiling = Ceiling(float(found["gb_per_s"]), found["method"]) if found else self.ceiling(case, scene)
        expected = self.oracle(case, scene)
        prepared = case.prepare(self.device, warm=False)  # the timer makes (and times) the first call
        with prepared.scope():
            timing = measure(prepared.run, prepared.sync, self.budget)
            value = prepared.call()
            peak, mem_method = devices.measure_peak_memory(prepared.call, prepared.device, prepared.backend)
        moved = bytes_moved(case, scene)
        gb_per_s = moved / timing.median / 1e9
        return {
            **timing.columns(),
            "pixels_per_s": case.pixels / timing.median,
            "bytes_moved": moved,
            "gb_per_s": gb_per_s,
            "ceiling_gb_per_s": ceiling.gb_per_s,
            "ceiling_method": ceiling.method,
            "roofline_fraction": gb_per_s / ceiling.gb_per_s,
            "peak_mem_bytes": peak,
            "mem_method": mem_method,
            "loss_value": value,
            "oracle_value": expected,
            **oracle_columns(value, expected, case),
        }
