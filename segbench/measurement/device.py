"""Where a cell runs: device choice, input placement, synchronisation and peak memory, per backend.

The GPU path differs from the CPU path in exactly three places, all here: placement
(``tf.device``, ``jax.device_put``, ``tensor.to``), synchronisation before the clock stops (each
backend as its documentation says: ``tf.test.experimental.sync_devices``, ``jax.block_until_ready``
(JAX dispatches asynchronously on the CPU too), ``torch.cuda.synchronize``; PyTorch on the CPU is
synchronous) and memory statistics (``tf.config.experimental.get_memory_info``, a JAX device's
``memory_stats()``, ``torch.cuda.max_memory_allocated``). Everything else is shared.
"""

from __future__ import annotations

import contextlib
import platform
import re
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DeviceUnavailableError(RuntimeError):
    """The asked-for device does not exist here (e.g. --device gpu on a machine without one)."""


@dataclass(frozen=True)
class Device:
    spec: str  # what the user asked for: auto, cpu, gpu, gpu:N
    kind: str  # "CPU" or "GPU"
    index: int
    name: str  # human-readable model, e.g. the CPU model or "NVIDIA A100-SXM4-40GB"

    @property
    def tf_name(self) -> str:
        return f"/{self.kind}:{self.index}"

    @property
    def is_gpu(self) -> bool:
        return self.kind == "GPU"


def parse_spec(spec: str) -> tuple[str, int | None]:
    """'auto' | 'cpu' | 'gpu' | 'gpu:N' -> (kind, index); raises ValueError naming --device."""
    match = re.fullmatch(r"(auto|cpu|gpu)(?::(\d+))?", spec.strip().lower())
    if not match or (match.group(1) != "gpu" and match.group(2) is not None):
        raise ValueError(f"--device must be auto, cpu, gpu or gpu:N, got {spec!r}")
    index = int(match.group(2)) if match.group(2) is not None else None
    return match.group(1), index


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def resolve(spec: str = "auto", *, uses_tensorflow: bool = True, backend: str | None = None) -> Device:
    """The device to run on. ``auto`` takes the first GPU the backend sees (TensorFlow's when
    ``uses_tensorflow``; ``backend`` jax or torch: that library's), else the CPU."""
    kind, index = parse_spec(spec)
    if backend in ("jax", "torch"):
        return _resolve_other(spec, kind, index, backend)
    if kind == "cpu" or (kind == "auto" and not uses_tensorflow):
        return Device(spec, "CPU", 0, cpu_model())
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if kind == "auto" and not gpus:
        return Device(spec, "CPU", 0, cpu_model())
    index = index or 0
    if index >= len(gpus):
        raise DeviceUnavailableError(f"--device {spec}: TensorFlow sees {len(gpus)} GPU(s) on this machine")
    details = tf.config.experimental.get_device_details(gpus[index])
    return Device(spec, "GPU", index, details.get("device_name", f"GPU:{index}"))


def _resolve_other(spec: str, kind: str, index: int | None, backend: str) -> Device:
    if kind == "cpu":
        return Device(spec, "CPU", 0, cpu_model())
    if backend == "jax":
        import jax

        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # no GPU platform in this jaxlib
            gpus = []
        names = [getattr(d, "device_kind", str(d)) for d in gpus]
    else:
        import torch

        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if kind == "auto" and not names:
        return Device(spec, "CPU", 0, cpu_model())
    index = index or 0
    if index >= len(names):
        label = "JAX" if backend == "jax" else "PyTorch"
        raise DeviceUnavailableError(f"--device {spec}: {label} sees {len(names)} GPU(s) on this machine")
    return Device(spec, "GPU", index, names[index])


def jax_device(device: Device) -> Any:
    import jax

    return jax.devices("gpu")[device.index] if device.is_gpu else jax.devices("cpu")[0]


def torch_device(device: Device) -> Any:
    import torch

    return torch.device(f"cuda:{device.index}" if device.is_gpu else "cpu")


def place(array: Any, device: Device, backend: str) -> Any:
    """Put an input where the timed code will read it, before the clock starts."""
    if backend == "numpy":
        return array
    if backend == "jax":
        import jax

        return jax.block_until_ready(jax.device_put(array, jax_device(device)))
    if backend == "torch":
        from segbench.losses.modes_torch import as_tensor

        return as_tensor(array, torch_device(device))
    import tensorflow as tf

    with tf.device(device.tf_name):
        return tf.identity(tf.convert_to_tensor(array))


@contextlib.contextmanager
def on(device: Device, backend: str) -> Iterator[None]:
    """Run the backend's ops on ``device`` inside the block (TensorFlow, JAX; PyTorch follows its inputs)."""
    if backend in ("numpy", "torch"):
        yield
        return
    if backend == "jax":
        import jax

        with jax.default_device(jax_device(device)):
            yield
        return
    import tensorflow as tf

    with tf.device(device.tf_name):
        yield


def first_value(result: Any) -> Any:
    """The scalar that proves a call finished: the loss, or its first element for a map or a pair."""
    value = result[0] if isinstance(result, tuple) else result
    shape = getattr(value, "shape", ())
    if len(shape):
        value = value[(0,) * len(shape)]
    if hasattr(value, "detach"):  # torch: a tensor of a forward+backward pass, bfloat16 too
        value = value.detach().float()
    return value


def synchronizer(device: Device, backend: str) -> Callable[[Any], float]:
    """A function that returns once ``result`` is really computed: the clock stops after it.

    CPU: fetching a scalar of the result blocks until TensorFlow has produced it. GPU: kernels run
    asynchronously, so all devices are synchronised first, then the scalar is fetched.
    """
    if backend == "numpy":
        return lambda result: float(first_value(result))
    if backend == "jax":
        import jax

        # JAX dispatches asynchronously, on the CPU as on a GPU: wait for every output (the
        # gradient too), as JAX's benchmarking advice says, then fetch the scalar.
        return lambda result: float(first_value(jax.block_until_ready(result)))
    if backend == "torch":
        import torch

        if device.is_gpu:

            def sync_cuda(result: Any) -> float:
                torch.cuda.synchronize(torch_device(device))
                return float(first_value(result))

            return sync_cuda
        return lambda result: float(first_value(result))  # PyTorch on the CPU is synchronous
    import tensorflow as tf

    if device.is_gpu:

        def sync_gpu(result: Any) -> float:
            tf.test.experimental.sync_devices()
            return float(first_value(result))

        return sync_gpu
    return lambda result: float(first_value(result))


# Peak memory of one call.

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def rss_peak_resettable() -> bool:
    """Linux lets a process reset its peak RSS (VmHWM) by writing 5 to /proc/self/clear_refs."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def measure_peak_memory(call: Callable[[], Any], device: Device, backend: str) -> tuple[int | None, str]:
    """(bytes, method): memory one call needs beyond what was in use before it (the inputs).

    - numpy: tracemalloc's peak of the call's allocations (numpy reports its buffers to it).
    - TensorFlow, CPU or GPU: the device allocator's peak minus what was in use before, after
      ``reset_memory_stats`` (``tf.config.experimental.get_memory_info``; TensorFlow 2.21 keeps these
      statistics for the CPU too). The same code on both devices. On the CPU, tensors smaller than
      about 256 KiB bypass the tracked allocator, so tiny cells can read 0.
    - Fallback when the allocator keeps no statistics: growth of the process's peak resident set
      (VmHWM, reset first). Allocator caching can hide reused memory, so this is labelled ``rss_hwm``.
    - PyTorch on a GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
      minus what was allocated before.
    - JAX on a GPU: the device's ``memory_stats()`` peak minus what was in use before, when the
      call raised the peak (JAX cannot reset it: a call below an earlier peak reads None).
    - JAX and PyTorch on the CPU: their allocators keep no statistics and tracemalloc does not see
      them: ``unavailable`` (None), not a wrong number.
    """
    if backend == "torch":
        if not device.is_gpu:
            call()
            return None, "unavailable"
        import torch

        torch.cuda.synchronize(torch_device(device))
        torch.cuda.reset_peak_memory_stats(torch_device(device))
        base = torch.cuda.memory_allocated(torch_device(device))
        call()
        return torch.cuda.max_memory_allocated(torch_device(device)) - base, "torch_cuda_max_allocated"
    if backend == "jax":
        stats = jax_device(device).memory_stats() if device.is_gpu else None
        if not stats or "peak_bytes_in_use" not in stats:
            call()
            return None, "unavailable"
        base, peak_before = stats.get("bytes_in_use", 0), stats["peak_bytes_in_use"]
        call()
        peak = jax_device(device).memory_stats()["peak_bytes_in_use"]
        if peak <= peak_before:
            return None, "jax_peak_not_raised"
        return peak - base, "jax_memory_stats_peak"
    if backend == "numpy":
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            call()
            return tracemalloc.get_traced_memory()[1] - base, "tracemalloc"
        finally:
            tracemalloc.stop()
    import tensorflow as tf

    name = device.tf_name.lstrip("/")
    try:
        tf.config.experimental.reset_memory_stats(name)
        base = tf.config.experimental.get_memory_info(name)["current"]
    except (ValueError, RuntimeError):  # no statistics for this device's allocator
        return _rss_growth(call)
    call()
    return tf.config.experimental.get_memory_info(name)["peak"] - base, "tf_allocator_peak"


def _rss_growth(call: Callable[[], Any]) -> tuple[int | None, str]:
    if not rss_peak_resettable():
        call()
        return None, "unavailable"
    base = _status_kib("VmRSS") or 0
    call()
    return max((_status_kib("VmHWM") or 0) - base, 0) * 1024, "rss_hwm"
