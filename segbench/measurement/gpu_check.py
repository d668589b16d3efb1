"""The GPU check (``scripts/gpu-check``): every GPU path segbench has, timed and checked in one command.

On a GPU node it runs the seed's three losses in every backend found (TensorFlow eager,
tf.function and XLA with segbench's ``fused`` formulation; JAX op by op and ``jax.jit``; PyTorch
eager and ``torch.compile``), forward and forward+backward, at shapes big enough to be
bandwidth-bound, and writes a results folder:

- ``results.csv`` (and ``results.parquet`` when pyarrow is there): one row per cell, its compile
  (first-call) time, median and IQR of the steady state, GB/s, fraction of the read ceiling,
  the loss value against the float64 oracle and the gradient against it on sampled pixels;
- ``reads.csv``: every way of reading both inputs that was timed (the ceiling is the fastest);
- ``environment.json``: device, driver and CUDA, library versions, git commit, skipped backends;
- ``summary.txt``: the read ceiling against the card's published bandwidth, the best fraction of
  the ceiling per loss, compiled over eager, compile times, and the verdict (also printed).

Each backend runs in its own process (``python -m segbench.measurement.gpu_check --worker NAME``), so a backend
that is missing, hidden, fails to import or crashes is one line and the others go on. Nothing is
downloaded; ``--wheels DIR`` installs the wheels of a folder with ``pip --no-index`` when asked.
``SEGBENCH_HIDE_BACKENDS=tensorflow`` (comma-separated) makes every process of the check refuse
to import those packages, to prove that the check runs without them.

Exit status: 0 when every cell ran on the asked-for device and agreed with the oracle; 1 with one
line when a GPU path errors, a device is not used when asked for (no GPU visible, or an input or
result not on it), a value is off the oracle, or a fraction of the ceiling above 100 % (beyond the
5 % noise slack of ``segbench.verdicts.compare``) shows a wrong ceiling; 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.abc
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("categorical_crossentropy", "missing_annotation_crossentropy", "marginal_crossentropy")
SHORT = {"categorical_crossentropy": "CE", "missing_annotation_crossentropy": "MA", "marginal_crossentropy": "MCE"}
PASSES = ("forward", "forward+backward")
BACKENDS = ("numpy", "tensorflow", "jax", "torch")
MODES = {
    "numpy": ("numpy",),
    "tensorflow": ("eager", "function", "xla"),
    "jax": ("eager", "jit"),
    "torch": ("eager", "compile"),
}
COMPILED = {"tensorflow": ("function", "xla"), "jax": ("jit",), "torch": ("compile",)}
MODULES = {"numpy": ("numpy",), "tensorflow": ("tensorflow", "keras"), "jax": ("jax", "jaxlib"), "torch": ("torch",)}
HIDE_VARIABLE = "SEGBENCH_HIDE_BACKENDS"
PACKAGES = (  # versions recorded in environment.json, where installed
    *("numpy", "pandas", "scikit-image", "pyarrow", "pytest-benchmark", "tensorflow", "keras"),
    *("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "torch", "triton", "nvidia-cuda-runtime-cu12"),
)
GPU_SHAPES = "16x1024x1024,16x2048x2048"  # batch x height x width; C from --classes
CPU_SHAPES = "2x64x64"
GPU_TIME_BUDGET_S = 300.0  # no cell starts after this: the check must finish within 6 minutes on one recent GPU
GRAD_SAMPLES = 1 << 16  # gradient pixels checked against the oracle per shape (all of them when fewer)
FAILED, BAD_USAGE = 1, 2
ENV_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "XLA_FLAGS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "TF_XLA_FLAGS",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_GPU_ALLOCATOR",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TORCHINDUCTOR_MAX_AUTOTUNE",
    "OMP_NUM_THREADS",
    HIDE_VARIABLE,
)


# ---------------------------------------------------------------------------------------------
# Published memory bandwidth of known cards (vendor data sheets), GB/s. First match wins, so
# the more specific names come first.

KNOWN_CARDS: tuple[tuple[str, str, float | None], ...] = (
    # GH200 comes with 4.0 TB/s (96 GB HBM3) or 4.9 TB/s (144 GB HBM3e): the name does not say which
    (r"GH200", "GH200", None),
    (r"H200", "H200 (SXM/NVL)", 4800.0),
    (r"H100.*PCIE", "H100 PCIe", 2000.0),
    (r"H100.*NVL", "H100 NVL", 3900.0),
    (r"H100", "H100 SXM", 3350.0),
    (r"A100.*PCIE.*80GB|A100.*80GB.*PCIE", "A100 80GB PCIe", 1935.0),
    (r"A100.*80GB", "A100 80GB SXM", 2039.0),
    (r"A100", "A100 40GB", 1555.0),
    (r"B200", "B200", 8000.0),
    (r"L40S", "L40S", 864.0),
    (r"L40\b", "L40", 864.0),
    (r"\bL4\b", "L4", 300.0),
    (r"RTX 4090", "GeForce RTX 4090", 1008.0),
    (r"RTX 6000 ADA", "RTX 6000 Ada", 960.0),
    (r"RTX A6000", "RTX A6000", 768.0),
    (r"A10G?\b", "A10/A10G", 600.0),
    (r"V100", "V100", 900.0),
    (r"\bT4\b", "T4", 320.0),
)
CEILING_SLACK = 1.05  # as segbench.presentation.run_tables: above 105 % of the ceiling, the ceiling is wrong


def published_bandwidth(device_name: str | None) -> tuple[str, float] | None:
    """(card, GB/s) from KNOWN_CARDS for a device name such as 'NVIDIA H100 80GB HBM3', else None."""
    if not device_name:
        return None
    for pattern, card, gb_per_s in KNOWN_CARDS:
        if re.search(pattern, device_name.upper()):
            return (card, gb_per_s) if gb_per_s else None
    return None


# ---------------------------------------------------------------------------------------------
# Hiding backends: a meta-path entry that refuses to import them, in every process of the check.


class _Hiding(importlib.abc.MetaPathFinder):
    """Wraps one finder of sys.meta_path: it finds nothing of the hidden packages, the rest as before.

    Every finder is wrapped, so a hidden package looks exactly as if it were not installed:
    ``importlib.util.find_spec`` returns None (libraries such as torch._dynamo probe optional
    packages that way) and ``import`` raises ModuleNotFoundError.
    """

    def __init__(self, finder: Any, names: tuple[str, ...]):
        self.finder, self.names = finder, names

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == name or fullname.startswith(name + ".") for name in self.names):
            return None
        return self.finder.find_spec(fullname, path, target)

    def invalidate_caches(self):
        invalidate = getattr(self.finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.finder, name)


def hidden_backends() -> set[str]:
    return {b.strip() for b in os.environ.get(HIDE_VARIABLE, "").split(",") if b.strip()}


def install_blocker() -> None:
    """Make the packages of the backends named in SEGBENCH_HIDE_BACKENDS look uninstalled here."""
    names = tuple(m for b in sorted(hidden_backends()) for m in MODULES.get(b, (b,)))
    if not names:
        return
    loaded = [m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names)]
    if loaded:
        raise RuntimeError(f"{HIDE_VARIABLE}: {', '.join(sorted(loaded)[:3])} already imported")
    sys.meta_path[:] = [
        f if isinstance(f, _Hiding) or not hasattr(f, "find_spec") else _Hiding(f, names) for f in sys.meta_path
    ]


# ---------------------------------------------------------------------------------------------
# Inputs and the float64 oracle


@dataclass(frozen=True)
class Shape:
    batch: int
    height: int
    width: int
    classes: int

    @property
    def label(self) -> str:
        return f"b{self.batch} {self.height}x{self.width} C={self.classes}"

    @property
    def key(self) -> str:
        return f"{self.batch}x{self.height}x{self.width}x{self.classes}"

    @property
    def pixels(self) -> int:
        return self.batch * self.height * self.width


def parse_shapes(text: str, classes: int) -> tuple[Shape, ...]:
    """'16x1024x1024,16x2048x2048' (batch x height x width, C from --classes) or with a 4th 'xC'."""
    shapes = []
    for item in text.split(","):
        parts = [int(p) for p in item.strip().lower().split("x")]
        if len(parts) == 3:
            parts.append(classes)
        if len(parts) != 4 or min(parts) < 1 or parts[3] < 2:
            raise ValueError(f"--shapes: expected BATCHxHEIGHTxWIDTH[xC] with C >= 2, got {item!r}")
        shapes.append(Shape(*parts))
    return tuple(shapes)


@dataclass(frozen=True)
class Inputs:
    y_true: np.ndarray
    y_pred: np.ndarray
    source: str


def make_inputs(shape: Shape, seed: int = 0) -> Inputs:
    """segbench's scenes (skimage) with one missing annotation per 8 images, else a seeded numpy fallback."""
    missing = max(1, shape.batch // 8) if shape.classes > 2 else 0
    try:
        import skimage.draw  # noqa: F401  (segbench.losses.scenes draws with it)
    except ImportError:
        return _numpy_inputs(shape, missing, seed)
    from segbench.losses.scenes import make_scene

    scene = make_scene(shape.batch, shape.height, shape.width, shape.classes, missing=missing, seed=seed)
    return Inputs(scene.y_true, scene.y_pred, "segbench.losses.scenes.make_scene")


def _numpy_inputs(shape: Shape, missing: int, seed: int) -> Inputs:
    """Blocky label maps and a noisy softmax that favours the label, class k erased from image k-1."""
    n, h, w, c = shape.batch, shape.height, shape.width, shape.classes
    rng = np.random.Generator(np.random.PCG64(seed))
    cells = rng.integers(0, c, size=(n, -(-h // 16), -(-w // 16)), dtype=np.int64)
    labels = cells.repeat(16, axis=1).repeat(16, axis=2)[:, :h, :w]
    y_pred = np.empty((n, h, w, c), np.float32)
    for i in range(n):
        logits = rng.normal(0.0, 1.0, (h, w, c)) + 4.0 * (labels[i][..., None] == np.arange(c))
        logits -= logits.max(axis=-1, keepdims=True)
        np.exp(logits, out=logits)
        y_pred[i] = logits / logits.sum(axis=-1, keepdims=True)
    annotated = labels.copy()
    for i in range(min(missing, n)):
        annotated[i][annotated[i] == 1 + i % (c - 1)] = 0
    y_true = (annotated[..., None] == np.arange(c)).astype(np.float32)
    return Inputs(y_true, y_pred, "numpy fallback (scikit-image not importable)")


def gradient_samples(shape: Shape, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, row, column) indices of the pixels whose gradient is checked: every pixel of the
    first and last image when they are few, else GRAD_SAMPLES random pixels of those two images."""
    images = sorted({0, shape.batch - 1})
    per_image = shape.height * shape.width
    if per_image * len(images) <= GRAD_SAMPLES:
        flat = np.arange(per_image)
        n = np.repeat(images, per_image)
        flat = np.tile(flat, len(images))
    else:
        rng = np.random.Generator(np.random.PCG64(seed))
        n = rng.choice(images, size=GRAD_SAMPLES)
        flat = rng.integers(0, per_image, size=GRAD_SAMPLES)
    return n.astype(np.int64), (flat // shape.width).astype(np.int64), (flat % shape.width).astype(np.int64)


def compute_oracle(shape: Shape, inputs: Inputs, path: Path) -> None:
    """Float64 oracle of each loss (value over the batch, gradient at the sampled pixels) into ``path``.

    Every loss is a mean of per-image means (class presence is per image), so the oracle runs image
    by image in threads: its float64 temporaries are those of one image.
    """
    from concurrent.futures import ThreadPoolExecutor

    from segbench.losses import oracle

    n_idx, r_idx, c_idx = gradient_samples(shape)
    arrays: dict[str, np.ndarray] = {"n": n_idx, "r": r_idx, "c": c_idx}
    # at most 8 threads: each holds float64 temporaries of one image (about 1 GB at 2048x2048, C=4)
    workers = max(1, min(shape.batch, os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for loss in LOSSES:

            def image_value(i: int, loss: str = loss) -> float:
                return float(oracle.loss_value(loss, inputs.y_true[i : i + 1], inputs.y_pred[i : i + 1]))

            arrays[f"{loss}/value"] = np.float64(np.mean(list(pool.map(image_value, range(shape.batch)))))

            def image_grad(i: int, loss: str = loss) -> tuple[np.ndarray, np.ndarray]:
                # the batch mean's gradient on image i: that image's own mean gradient over the batch
                g = oracle.gradient(loss, inputs.y_true[i : i + 1], inputs.y_pred[i : i + 1])[0] / shape.batch
                where = n_idx == i
                return where, g[r_idx[where], c_idx[where]]

            grad = np.empty((len(n_idx), shape.classes))
            for where, values in pool.map(image_grad, np.unique(n_idx)):
                grad[where] = values
            arrays[f"{loss}/grad"] = grad
    np.savez(path, **arrays)


# ---------------------------------------------------------------------------------------------
# Workers: one process per backend


class SkipBackendError(Exception):
    """The backend cannot run here (not installed, hidden, no GPU): one line, not a traceback."""


class DeviceNotUsedError(Exception):
    """The asked-for device is not where the inputs or results are."""


class Adapter:
    """What a backend provides: device checks, placement, sync, loss and read callables."""

    name = ""
    formulation = "native"

    def __init__(self, device: str):
        self.device = device

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def place(self, array: np.ndarray) -> Any:
        raise NotImplementedError

    def sync(self, result: Any) -> Any:
        return result

    def check_device(self, value: Any, what: str) -> None:
        """Raise DeviceNotUsedError if ``value`` is not on the asked-for device."""

    def where(self, value: Any) -> str:
        """The device ``value`` (or the first of a tuple) is on, as the backend names it."""
        return "host"

    def loss_call(self, loss: str, mode: str, gradient: bool, y_true: Any, y_pred: Any) -> Callable[[], Any]:
        raise NotImplementedError

    def read_kernels(self, y_true: Any, y_pred: Any) -> dict[str, tuple[Callable[[], Any], int]]:
        """Ways of reading both inputs once: name -> (call, how many times it moves the inputs)."""
        raise NotImplementedError

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def sampled(self, grad: Any, n: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(grad)[n, r, c]

    def peak_memory_reset(self) -> None:
        """Start counting the device's peak memory (where the backend reports it)."""

    def peak_memory(self) -> int | None:
        return None

    def release(self) -> None:
        """Free what the backend caches between shapes."""


class NumpyAdapter(Adapter):
    name = "numpy"
    formulation = "fused"

    def info(self) -> dict[str, Any]:
        if self.device == "gpu":
            raise SkipBackendError("runs on the host only (not a GPU path)")
        from segbench.measurement.device import cpu_model

        return {"version": np.__version__, "device_name": cpu_model(), "device_kind": "CPU"}

    def place(self, array):
        return array

    def sync(self, result):
        return result  # numpy has finished when it returns

    def loss_call(self, loss, mode, gradient, y_true, y_pred):
        from segbench.losses.numpy_impl import IMPLEMENTATIONS

        value, value_and_grad = IMPLEMENTATIONS[(loss, "fused")]
        fn = value_and_grad if gradient else value
        return lambda: fn(y_true, y_pred)

    def read_kernels(self, y_true, y_pred):
        return {"numpy sum": (lambda: y_true.sum() + y_pred.sum(), 1)}


class JaxAdapter(Adapter):
    name = "jax"

    def info(self):
        import jax

        self.jax = jax
        self.jnp = __import__("jax.numpy", fromlist=["numpy"])
        from segbench.losses import jax_impl as losses_jax

        self.losses = losses_jax
        devices = jax.devices()
        if self.device == "gpu":
            try:
                gpus = jax.devices("gpu")
            except RuntimeError:
                gpus = []
            if not gpus:
                platforms = sorted({d.platform for d in devices})
                raise DeviceNotUsedError(f"jax sees no GPU (its devices: {', '.join(platforms)}; a CPU-only jaxlib?)")
            self.dev = gpus[0]
        else:
            self.dev = jax.devices("cpu")[0]
        client = getattr(self.dev, "client", None)
        return {
            "version": jax.__version__,
            "jaxlib_version": _version("jaxlib"),
            "device_name": getattr(self.dev, "device_kind", str(self.dev)),
            "device_kind": self.dev.platform.upper(),
            "platform_version": getattr(client, "platform_version", None),
            "devices": [str(d) for d in devices],
            "x64": bool(jax.config.jax_enable_x64),
        }

    def place(self, array):
        return self.jax.block_until_ready(self.jax.device_put(array, self.dev))

    def sync(self, result):
        return self.jax.block_until_ready(result)

    def check_device(self, value, what):
        leaves = value if isinstance(value, tuple) else (value,)
        for leaf in leaves:
            where = leaf.devices()
            if where != {self.dev}:
                raise DeviceNotUsedError(f"jax: {what} is on {sorted(map(str, where))}, not {self.dev}")

    def where(self, value):
        first = value[0] if isinstance(value, tuple) else value
        return ", ".join(sorted(str(d) for d in first.devices()))

    def loss_call(self, loss, mode, gradient, y_true, y_pred):
        fn = self.losses.IMPLEMENTATIONS[loss]
        body = self.jax.value_and_grad(lambda p, t: fn(t, p), argnums=0) if gradient else (lambda p, t: fn(t, p))
        if mode == "jit":
            body = self.jax.jit(body)
        return lambda: body(y_pred, y_true)

    def read_kernels(self, y_true, y_pred):
        jax, jnp = self.jax, self.jnp
        total = jax.jit(lambda a, b: jnp.sum(a) + jnp.sum(b))
        peak = jax.jit(lambda a, b: jnp.max(jnp.maximum(a, b)))
        kernels = {
            "jax.jit sum": (lambda: total(y_true, y_pred), 1),
            "jax.jit max of maximum": (lambda: peak(y_true, y_pred), 1),
        }
        if self.device == "gpu":  # read once, written once: twice the bytes
            scale = jax.jit(lambda a, b: (a * 2, b * 2))
            kernels["jax.jit scaled copy"] = (lambda: scale(y_true, y_pred), 2)
        return kernels

    def to_numpy(self, value):
        return np.asarray(value)

    def sampled(self, grad, n, r, c):
        return np.asarray(grad[self.jnp.asarray(n), self.jnp.asarray(r), self.jnp.asarray(c)])

    def release(self):
        self.jax.clear_caches()


class TorchAdapter(Adapter):
    name = "torch"

    def info(self):
        import torch

        self.torch = torch
        from segbench.losses import torch_impl as losses_torch

        self.losses = losses_torch
        if self.device == "gpu":
            if not torch.cuda.is_available():
                build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
                raise DeviceNotUsedError(f"torch.cuda.is_available() is False (torch {torch.__version__}, {build})")
            self.dev = torch.device("cuda", 0)
            name = torch.cuda.get_device_name(self.dev)
            capability = ".".join(map(str, torch.cuda.get_device_capability(self.dev)))
        else:
            self.dev = torch.device("cpu")
            from segbench.measurement.device import cpu_model

            name, capability = cpu_model(), None
            # The CPU mode is a smoke test on tiny inputs: one thread times them without the
            # spinning and waiting of a thread pool on a shared machine.
            torch.set_num_threads(1)
        return {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "triton_version": _version("triton"),
            "device_name": name,
            "device_kind": "GPU" if self.device == "gpu" else "CPU",
            "compute_capability": capability,
            "threads": torch.get_num_threads(),
        }

    def place(self, array):
        tensor = self.torch.from_numpy(np.array(array)).to(self.dev)
        self.sync(tensor)
        return tensor

    def sync(self, result):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)
        return result

    def check_device(self, value, what):
        for leaf in value if isinstance(value, tuple) else (value,):
            if leaf.device.type != self.dev.type:
                raise DeviceNotUsedError(f"torch: {what} is on {leaf.device}, not {self.dev}")

    def where(self, value):
        return str((value[0] if isinstance(value, tuple) else value).device)

    def loss_call(self, loss, mode, gradient, y_true, y_pred):
        torch = self.torch
        fn = self.losses.IMPLEMENTATIONS[loss]
        # dynamic=False: each shape gets kernels specialised to it, as a training loop at one shape would
        body = torch.compile(fn, dynamic=False) if mode == "compile" else fn
        if not gradient:

            def forward():
                with torch.no_grad():
                    return body(y_true, y_pred)

            return forward

        def forward_backward():
            p = y_pred.detach().requires_grad_(True)
            value = body(y_true, p)
            (grad,) = torch.autograd.grad(value, p)
            return value.detach(), grad

        return forward_backward

    def read_kernels(self, y_true, y_pred):
        torch = self.torch

        def total(a, b):
            return a.sum() + b.sum()

        kernels = {"torch sum": (lambda: total(y_true, y_pred), 1)}
        if self.device == "gpu":  # on the CPU's tiny grid a compile (~30 s) would buy nothing
            compiled = torch.compile(total, dynamic=False)
            kernels["torch.compile sum"] = (lambda: compiled(y_true, y_pred), 1)
            # device-to-device copies: read once, written once
            kernels["torch clone"] = (lambda: (y_true.clone(), y_pred.clone()), 2)
        return kernels

    def to_numpy(self, value):
        return value.detach().cpu().numpy()

    def sampled(self, grad, n, r, c):
        index = [self.torch.from_numpy(i).to(grad.device) for i in (n, r, c)]
        return grad[index[0], index[1], index[2]].cpu().numpy()

    def peak_memory_reset(self):
        if self.dev.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats(self.dev)

    def peak_memory(self):
        return int(self.torch.cuda.max_memory_allocated(self.dev)) if self.dev.type == "cuda" else None

    def release(self):
        self.torch._dynamo.reset()
        if self.dev.type == "cuda":
            self.torch.cuda.empty_cache()


class TensorFlowAdapter(Adapter):
    """segbench's own TensorFlow path: devices, modes and the ``fused`` formulation."""

    name = "tensorflow"
    formulation = "fused"

    def info(self):
        from segbench.measurement import environment

        environment.disable_xla_persistent_cache()  # compile times must be real
        from segbench.measurement.backends import import_tensorflow_quietly

        tf = import_tensorflow_quietly()
        self.tf = tf
        from segbench.losses import modes_tf
        from segbench.losses import tf_impl as losses_tf
        from segbench.losses.registry import MODES as SEGBENCH_MODES
        from segbench.measurement import device as devices

        self.devices, self.losses, self.modes, self.segbench_modes = devices, losses_tf, modes_tf, SEGBENCH_MODES
        try:
            self.dev = devices.resolve(self.device)
        except devices.DeviceUnavailableError as error:
            build = "built with CUDA" if tf.test.is_built_with_cuda() else "a CPU-only build"
            raise DeviceNotUsedError(
                f"tensorflow sees no GPU ({error}; tensorflow {tf.__version__}, {build})"
            ) from None
        self._sync = devices.synchronizer(self.dev, "tensorflow")
        return {
            "version": tf.__version__,
            "build": json.loads(environment.tensorflow_build(tf)),
            "device_name": self.dev.name,
            "device_kind": self.dev.kind,
            "onednn": environment.onednn(tf),
        }

    def place(self, array):
        return self.devices.place(array, self.dev, "tensorflow")

    def sync(self, result):
        self._sync(result)
        return result

    def check_device(self, value, what):
        for leaf in value if isinstance(value, tuple) else (value,):
            where = getattr(leaf, "device", "") or ""
            if f"{self.dev.kind}:{self.dev.index}" not in where.upper().replace("DEVICE:", ""):
                raise DeviceNotUsedError(f"tensorflow: {what} is on {where!r}, not {self.dev.tf_name}")

    def where(self, value):
        return str(getattr(value[0] if isinstance(value, tuple) else value, "device", ""))

    def loss_call(self, loss, mode, gradient, y_true, y_pred):
        impl = self.losses.IMPLEMENTATIONS[(loss, self.formulation)]
        call = self.modes.build(impl, self.segbench_modes[mode], reduction="mean", gradient=gradient)

        def run():
            with self.devices.on(self.dev, "tensorflow"):
                return call(y_true, y_pred)

        return run

    def read_kernels(self, y_true, y_pred):
        from segbench.measurement.cells import _tensorflow_read_kernels

        kernels = {}
        for name, (kernel, passes) in _tensorflow_read_kernels(self.dev).items():

            def run(kernel=kernel):
                with self.devices.on(self.dev, "tensorflow"):
                    return kernel(y_true, y_pred)

            kernels[name] = (run, passes)
        return kernels

    def to_numpy(self, value):
        return value.numpy()

    def sampled(self, grad, n, r, c):
        return self.tf.gather_nd(grad, np.stack([n, r, c], axis=1)).numpy()

    def peak_memory_reset(self):
        if self.dev.is_gpu:
            with contextlib.suppress(ValueError, RuntimeError):
                self.tf.config.experimental.reset_memory_stats(self.dev.tf_name.lstrip("/"))

    def peak_memory(self):
        if not self.dev.is_gpu:
            return None
        try:
            return int(self.tf.config.experimental.get_memory_info(self.dev.tf_name.lstrip("/"))["peak"])
        except (ValueError, RuntimeError):
            return None


ADAPTERS: dict[str, type[Adapter]] = {
    "numpy": NumpyAdapter,
    "tensorflow": TensorFlowAdapter,
    "jax": JaxAdapter,
    "torch": TorchAdapter,
}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0][:300]


def _budget(device: str):
    from segbench.measurement.sweep import TimerBudget

    if device == "gpu":
        return TimerBudget(min_run_time=0.25, min_rounds=7, max_rounds=50, warmup_time=0.05)
    return TimerBudget(min_run_time=0.05, min_rounds=5, max_rounds=20, warmup_time=0.01)


def run_worker(backend: str, device: str, shapes: tuple[Shape, ...], work: Path, deadline: float) -> dict[str, Any]:
    """Everything one backend measures: its environment, read kernels and loss cells."""
    from segbench._constants import tolerance
    from segbench.losses.tolerances import within
    from segbench.measurement.timing import measure

    out: dict[str, Any] = {"backend": backend, "status": "ok", "rows": [], "reads": []}
    if backend in hidden_backends():
        return {**out, "status": "skipped", "reason": f"hidden by {HIDE_VARIABLE}"}
    adapter = ADAPTERS[backend](device)
    try:
        out["info"] = adapter.info()
    except SkipBackendError as reason:
        return {**out, "status": "skipped", "reason": str(reason)}
    except DeviceNotUsedError as reason:
        return {**out, "status": "no_device", "reason": str(reason)}
    except ImportError as error:  # not installed, or installed but broken: one line either way
        top = (getattr(error, "name", None) or "").split(".")[0]
        if isinstance(error, ModuleNotFoundError) and top in MODULES[backend]:
            reason = f"not installed ({top} cannot be imported)"
        else:
            reason = f"cannot be imported: {_first_line(error)}"
        return {**out, "status": "skipped", "reason": reason}
    budget = _budget(device)
    for shape in shapes:
        common = {"backend": backend, "batch": shape.batch, "height": shape.height, "width": shape.width}
        common |= {"classes": shape.classes, "dtype": "float32", "device": device}
        if time.time() > deadline:
            out["rows"] += [
                {**common, "mode": m, "loss": loss, "pass": p, "status": "not run", "error": "time budget spent"}
                for m in MODES[backend]
                for loss in LOSSES
                for p in PASSES
            ]
            continue
        inputs = make_inputs(shape)
        oracle = np.load(work / f"oracle_{shape.key}.npz")
        n_idx, r_idx, c_idx = oracle["n"], oracle["r"], oracle["c"]
        y_true, y_pred = adapter.place(inputs.y_true), adapter.place(inputs.y_pred)
        nbytes = inputs.y_true.nbytes + inputs.y_pred.nbytes
        adapter.check_device(y_true, "y_true")
        adapter.check_device(y_pred, "y_pred")
        for name, (call, passes) in adapter.read_kernels(y_true, y_pred).items():
            row = {**common, "method": name}
            try:
                m = measure(call, adapter.sync, budget)
                row |= {"status": "ok", "median_s": m.median, "compile_s": m.compile_s}
                row["gb_per_s"] = passes * nbytes / m.median / 1e9
            except Exception as error:
                row |= {"status": "error", "error": _first_line(error)}
            out["reads"].append(row)
        for loss in LOSSES:
            for pass_ in PASSES:
                gradient = pass_ == "forward+backward"
                for mode in MODES[backend]:
                    row = {**common, "mode": mode, "formulation": adapter.formulation, "loss": loss, "pass": pass_}
                    row["inputs"] = inputs.source
                    if time.time() > deadline:
                        out["rows"].append({**row, "status": "not run", "error": "time budget spent"})
                        continue
                    try:
                        call = adapter.loss_call(loss, mode, gradient, y_true, y_pred)
                        adapter.peak_memory_reset()
                        m = measure(call, adapter.sync, budget)
                        result = adapter.sync(call())
                        row["placed_on"] = adapter.where(result)
                        adapter.check_device(result, "the result")
                        value = result[0] if gradient else result
                        row |= m.columns()
                        for column in ("raw_times_s", "value", "unit"):
                            row.pop(column)
                        row |= {"status": "ok", "peak_bytes": adapter.peak_memory()}
                        moved = nbytes + (inputs.y_pred.nbytes if gradient else 0)
                        row |= {"bytes_moved": moved, "gb_per_s": moved / m.median / 1e9}
                        row["loss_value"] = float(adapter.to_numpy(value))
                        expected = float(oracle[f"{loss}/value"])
                        tol = tolerance("float32", terms=shape.pixels)
                        row |= {"oracle_value": expected, "oracle_abs_diff": abs(row["loss_value"] - expected)}
                        row["value_ok"] = within(row["loss_value"], expected, tol)
                        if gradient:
                            got = adapter.sampled(result[1], n_idx, r_idx, c_idx).astype(np.float64)
                            want = oracle[f"{loss}/grad"]
                            base = tolerance("float32")
                            scale = max(float(np.abs(want).max()), np.finfo(np.float64).tiny)
                            error = np.abs(got - want)
                            row["grad_max_rel_err"] = float(error.max() / scale)
                            row["grad_ok"] = bool(np.all(error <= base["atol"] * scale + base["rtol"] * np.abs(want)))
                        del result, value
                    except DeviceNotUsedError as error:
                        row |= {"status": "wrong_device", "error": str(error)}
                    except Exception as error:
                        row |= {"status": "error", "error": _first_line(error)}
                        traceback.print_exc()
                    out["rows"].append(row)
        del y_true, y_pred
        adapter.release()
    return out


def worker_main(args: argparse.Namespace) -> int:
    install_blocker()
    shapes = parse_shapes(args.shapes, 4)
    try:
        result = run_worker(args.worker, args.device, shapes, Path(args.work), args.deadline)
    except DeviceNotUsedError as error:  # the inputs did not land on the device
        result = {"backend": args.worker, "status": "no_device", "reason": str(error), "rows": [], "reads": []}
    except Exception as error:  # anything outside a cell: the backend's path is broken
        traceback.print_exc()
        result = {"backend": args.worker, "status": "error", "reason": _first_line(error), "rows": [], "reads": []}
    Path(args.result).write_text(json.dumps(result, default=_json_default))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ---------------------------------------------------------------------------------------------
# The parent: environment, workers, tables, summary, verdict


def _nvidia_smi() -> dict[str, Any] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    query = "name,driver_version,memory.total,pci.bus_id,clocks.max.memory"
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"error": _first_line(error)}
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[:1]}
    gpus = [
        dict(zip(query.split(","), (v.strip() for v in line.split(",")), strict=False))
        for line in out.stdout.splitlines()
    ]
    try:
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout or ""
    except (OSError, subprocess.TimeoutExpired):
        banner = ""
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", banner)
    return {"gpus": gpus, "driver_cuda_version": cuda.group(1) if cuda else None}


def gpu_visible() -> str | None:
    """None if this machine shows a GPU (a /dev/nvidia* or /dev/kfd node, or nvidia-smi), else why not."""
    import glob

    if glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd") or shutil.which("nvidia-smi"):
        return None
    return "--device gpu: no GPU is visible on this machine (no /dev/nvidia*, no /dev/kfd, no nvidia-smi)"


def host_environment(args: argparse.Namespace) -> dict[str, Any]:
    from segbench import __version__
    from segbench.measurement import environment
    from segbench.measurement.device import cpu_model

    commit, dirty = environment.git_state(ROOT)
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "device_asked": args.device,
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "git_commit": commit,
        "git_dirty": dirty,
        "segbench_version": __version__,
        "packages": {name: _version(name) for name in PACKAGES},
        "nvidia_smi": _nvidia_smi(),
        "variables": {k: os.environ[k] for k in ENV_VARIABLES if k in os.environ},
    }


def install_wheels(folder: str) -> str | None:
    """pip install --no-index --find-links FOLDER every wheel in it; None, or why it failed."""
    wheels = sorted(str(p) for p in Path(folder).glob("*.whl"))
    if not wheels:
        return f"--wheels {folder}: no .whl files there"
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", folder, *wheels]
    print("+ " + " ".join(command), flush=True)
    done = subprocess.run(command)
    return None if done.returncode == 0 else f"--wheels {folder}: pip install exited {done.returncode}"


def _worker_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Fresh compile caches, so that compile times are first-call times, not disk-cache hits.
    env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor-cache")
    env["TRITON_CACHE_DIR"] = str(work / "triton-cache")
    env["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "0"
    env["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "0"
    return env


def run_backend(backend: str, args: argparse.Namespace, work: Path, deadline: float) -> dict[str, Any]:
    result_file = work / f"{backend}.json"
    command = [sys.executable, "-m", "segbench.measurement.gpu_check", "--worker", backend, "--device", args.device]
    command += ["--shapes", ",".join(s.key for s in args.shape_list), "--work", str(work)]
    command += ["--result", str(result_file), "--deadline", repr(deadline)]
    log = work / f"{backend}.log"
    started = time.time()
    timeout = max(deadline - started, 0) + (120 if args.device == "gpu" else 300)
    try:
        with open(log, "w") as stream:
            done = subprocess.run(
                command, env=_worker_env(work), stdout=stream, stderr=subprocess.STDOUT, timeout=timeout
            )
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    if result_file.exists():
        result = json.loads(result_file.read_text())
    else:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:] or [""]
        why = f"timed out after {timeout:.0f} s" if code == "timeout" else f"exited {code}"
        result = {"backend": backend, "status": "error", "reason": f"worker {why}: {tail[0][:300]}"}
        result |= {"rows": [], "reads": []}
    result["seconds"] = round(time.time() - started, 1)
    result["log"] = log.read_text(errors="replace")[-20000:]
    return result


def _cell(row: Any) -> str:
    return f"{_mode_label(row)} {SHORT.get(row['loss'], row['loss'])} {row['pass']} {Shape(*_dims(row)).label}"


def _mode_label(row: Any) -> str:
    return row["backend"] if row["backend"] == row["mode"] else f"{row['backend']} {row['mode']}"


def _dims(row: Any) -> tuple[int, int, int, int]:
    return int(row["batch"]), int(row["height"]), int(row["width"]), int(row["classes"])


def assemble(results: list[dict[str, Any]]):
    """(cells, reads) tables; each cell's fraction of its shape's read ceiling."""
    import pandas as pd

    rows = [r for res in results for r in res.get("rows", [])]
    reads = pd.DataFrame([r for res in results for r in res.get("reads", [])])
    cells = pd.DataFrame(rows)
    if len(cells) == 0:
        return cells, reads
    for column in ("median_s", "gb_per_s", "value_ok", "grad_ok", "error", "peak_bytes", "grad_max_rel_err"):
        if column not in cells:
            cells[column] = None
    if len(reads) and "gb_per_s" in reads:
        ok = reads[reads["status"] == "ok"]
        best = ok.loc[ok.groupby(["batch", "height", "width", "classes"])["gb_per_s"].idxmax()]
        ceiling = best.set_index(["batch", "height", "width", "classes"])
        keys = list(zip(cells["batch"], cells["height"], cells["width"], cells["classes"], strict=True))
        cells["ceiling_gb_per_s"] = [ceiling["gb_per_s"].get(k, np.nan) for k in keys]
        cells["ceiling_method"] = [
            f"{ceiling['backend'].get(k)}: {ceiling['method'].get(k)}" if k in ceiling.index else None for k in keys
        ]
        cells["roofline_fraction"] = cells["gb_per_s"].astype(float) / cells["ceiling_gb_per_s"]
    else:
        cells["ceiling_gb_per_s"] = np.nan
        cells["ceiling_method"] = None
        cells["roofline_fraction"] = np.nan
    return cells, reads


def verdict(args, results, cells, reads, card) -> list[str]:
    """Every reason to fail, most telling first (empty: pass)."""
    failures: list[str] = []
    gpu = args.device == "gpu"
    ran = [r for r in results if r["status"] == "ok"]
    for res in results:
        if res["status"] == "error":
            failures.append(f"{res['backend']}: {res['reason']}")
        elif res["status"] == "no_device":
            failures.append(f"--device {args.device}: {res['reason']}")
    if gpu and not ran and not any(r["status"] in ("error", "no_device") for r in results):
        failures.append("--device gpu: no backend that can use a GPU is installed (" + _skipped_text(results) + ")")
    if not ran and not failures:
        failures.append("no backend ran (" + _skipped_text(results) + ")")
    if len(cells):
        for _, row in cells[cells["status"] == "wrong_device"].iterrows():
            failures.append(f"device not used: {row['error']} ({_cell(row)})")
        for _, row in cells[cells["status"] == "error"].iterrows():
            failures.append(f"{_cell(row)}: {row['error']}")
        ok = cells[cells["status"] == "ok"]
        for _, row in ok[ok["value_ok"] == False].iterrows():  # noqa: E712 (a column of objects)
            failures.append(
                f"{_cell(row)}: value {row['loss_value']:.9g} is off the float64 oracle {row['oracle_value']:.9g}"
            )
        for _, row in ok[ok["grad_ok"] == False].iterrows():  # noqa: E712
            failures.append(
                f"{_cell(row)}: gradient off the oracle (max error {row['grad_max_rel_err']:.2g} of its largest)"
            )
        above = ok[ok["roofline_fraction"] > CEILING_SLACK]
        if len(above):
            worst = above.loc[above["roofline_fraction"].idxmax()]
            message = (
                f"{_cell(worst)} reads at {100 * worst['roofline_fraction']:.0f} % of the read ceiling "
                f"({worst['ceiling_method']}, {worst['ceiling_gb_per_s']:.1f} GB/s): the ceiling is wrong"
            )
            if gpu:  # on the CPU's tiny grid everything sits in cache: the summary notes it instead
                failures.append(message)
    if gpu and card and len(reads):
        fastest = reads[reads["status"] == "ok"]["gb_per_s"].max()
        if fastest > CEILING_SLACK * card[1]:
            failures.append(
                f"the read ceiling {fastest:.0f} GB/s is above the {card[0]}'s published {card[1]:.0f} GB/s: "
                "a read was not from device memory (cache?) or the card is misnamed"
            )
    return failures


def _skipped_text(results) -> str:
    return "; ".join(f"{r['backend']}: {r.get('reason')}" for r in results if r["status"] != "ok") or "none asked for"


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def summary_text(args, env, results, cells, reads, card, failures, elapsed) -> str:
    """The short text summary (summary.txt, also printed)."""
    lines = []
    commit = env.get("git_commit") or "unknown commit"
    dirty = " (uncommitted changes)" if env.get("git_dirty") else ""
    lines.append(f"segbench gpu-check --device {args.device}, {env['created_at']}, commit {commit[:12]}{dirty}")
    kind = "GPU" if args.device == "gpu" else "CPU"
    devices = sorted(
        {str(r["info"]["device_name"]) for r in results if r["status"] == "ok" and r["info"]["device_kind"] == kind}
    )
    if args.device != "gpu":
        from segbench.measurement.device import cpu_model

        devices = [cpu_model()]
    smi = env.get("nvidia_smi") or {}
    driver = ", ".join(sorted({g.get("driver_version", "?") for g in smi.get("gpus", [])})) or "n/a"
    cuda = {
        r["backend"]: r["info"].get("cuda")
        or r["info"].get("platform_version")
        or (r["info"].get("build") or {}).get("cuda_version")
        for r in results
        if r["status"] == "ok" and r["info"]["device_kind"] == "GPU"
    }
    cuda_text = ", ".join(f"{b} {v}" for b, v in cuda.items() if v) or "n/a"
    lines.append(f"device: {', '.join(devices) or 'none'}; driver {driver}; CUDA {cuda_text}")
    for res in results:
        if res["status"] == "ok":
            lines.append(
                f"ran {res['backend']} {res['info'].get('version')} ({', '.join(MODES[res['backend']])}) "
                f"in {res['seconds']} s"
            )
        else:
            lines.append(f"skipped {res['backend']}: {res.get('reason')}")
    lines.append(f"inputs: float32, {', '.join(s.label for s in args.shape_list)}; total {elapsed:.0f} s")
    lines.append("")
    ok = cells[cells["status"] == "ok"] if len(cells) else cells
    if len(reads) and "gb_per_s" in reads and reads["gb_per_s"].notna().any():
        good = reads[reads["status"] == "ok"]
        for key, group in good.groupby(["batch", "height", "width", "classes"], sort=False):
            best = group.loc[group["gb_per_s"].idxmax()]
            lines.append(
                f"read ceiling at {Shape(*key).label}: {best['gb_per_s']:.1f} GB/s "
                f"({best['backend']}: {best['method']})"
            )
        fastest = good["gb_per_s"].max()
        if args.device != "gpu":
            lines.append(f"published bandwidth: not applicable on the CPU (fastest read {fastest:.1f} GB/s)")
        elif card:
            lines.append(
                f"published bandwidth of the {card[0]}: {card[1]:.0f} GB/s; the fastest read reached "
                f"{100 * fastest / card[1]:.0f} % of it"
            )
        else:
            lines.append(
                f"published bandwidth: unknown card ({', '.join(devices)}): add it to KNOWN_CARDS in {__name__}"
            )
    else:
        lines.append("read ceiling: none measured")
    if len(ok):
        largest = ok.sort_values(["batch", "height", "width"]).iloc[-1]
        at = ok[
            (ok["height"] == largest["height"]) & (ok["width"] == largest["width"]) & (ok["batch"] == largest["batch"])
        ]
        lines.append("")
        lines.append(f"best fraction of the read ceiling per loss at {Shape(*_dims(largest)).label} (mode, median):")
        for loss in LOSSES:
            parts = []
            for pass_ in PASSES:
                sub = at[(at["loss"] == loss) & (at["pass"] == pass_)]
                if len(sub):
                    best = sub.loc[sub["roofline_fraction"].astype(float).idxmax()]
                    parts.append(
                        f"{pass_} {100 * best['roofline_fraction']:.0f} % ({_mode_label(best)}, "
                        f"{_fmt_ms(best['median_s'])})"
                    )
            lines.append(f"  {loss:<32} " + "; ".join(parts))
        lines.append("")
        lines.append(f"compiled over eager (eager median / compiled median) at {Shape(*_dims(largest)).label}:")
        for backend, compiled_modes in COMPILED.items():
            sub = at[at["backend"] == backend]
            for mode in compiled_modes:
                parts = []
                for loss in LOSSES:
                    for pass_ in PASSES:
                        pair = sub[(sub["loss"] == loss) & (sub["pass"] == pass_)].set_index("mode")["median_s"]
                        if "eager" in pair and mode in pair:
                            short_pass = "fwd" if pass_ == "forward" else "f+b"
                            parts.append(f"{SHORT[loss]} {short_pass} {pair['eager'] / pair[mode]:.1f}x")
                if parts:
                    lines.append(f"  {backend} {mode}: " + ", ".join(parts))
        lines.append("")
        lines.append("compile times (first call, incl. tracing; per shape, loss and pass):")
        for backend, compiled_modes in COMPILED.items():
            for mode in compiled_modes:
                sub = ok[(ok["backend"] == backend) & (ok["mode"] == mode)]["compile_s"].astype(float)
                if len(sub):
                    lines.append(
                        f"  {backend} {mode}: median {sub.median():.2f} s, max {sub.max():.2f} s, "
                        f"total {sub.sum():.1f} s over {len(sub)} cells"
                    )
        checked = ok["value_ok"].notna().sum()
        good_values = (ok["value_ok"] == True).sum()  # noqa: E712
        grads = ok["grad_ok"].notna().sum()
        good_grads = (ok["grad_ok"] == True).sum()  # noqa: E712
        lines.append("")
        lines.append(
            f"oracle: {good_values}/{checked} loss values and {good_grads}/{grads} gradients (sampled pixels) "
            "within the float32 tolerance of the float64 oracle"
        )
    if len(cells):
        not_run = cells[cells["status"] == "not run"]
        if len(not_run):
            lines.append(
                f"INCOMPLETE: {len(not_run)} cells not run, the time budget ({args.time_budget:.0f} s) was spent"
            )
        if args.device != "gpu":
            above = ok[ok["roofline_fraction"] > CEILING_SLACK] if len(ok) else ok
            if len(above):
                lines.append(
                    f"note: {len(above)} cells above 105 % of the read ceiling "
                    "(on the CPU's tiny grid: cache and timer noise, not a verdict)"
                )
    lines.append("")
    if failures:
        more = f" (and {len(failures) - 1} more, listed below)" if len(failures) > 1 else ""
        lines.append(f"FAIL: {failures[0]}{more}")
        lines += [f"  - {f}" for f in failures[1:]]
    else:
        not_run = int((cells["status"] == "not run").sum()) if len(cells) else 0
        if not_run:
            lines.append(
                f"PASS, INCOMPLETE: every cell that ran used the asked-for device and agreed with the oracle; "
                f"{not_run} not run"
            )
        else:
            lines.append("PASS: every cell ran on the asked-for device and agreed with the oracle")
    return "\n".join(lines) + "\n"


def write_tables(out: Path, cells, reads) -> list[str]:
    written = []
    for name, frame in (("results", cells), ("reads", reads)):
        frame.to_csv(out / f"{name}.csv", index=False)
        written.append(f"{name}.csv")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    for name, frame in (("results", cells), ("reads", reads)):
        typed = {c: "boolean" for c in ("value_ok", "grad_ok") if c in frame}
        frame = frame.astype(typed | ({"peak_bytes": "Int64"} if "peak_bytes" in frame else {}))
        frame = frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object})
        frame.to_parquet(out / f"{name}.parquet")
        written.append(f"{name}.parquet")
    return written


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu-check",
        description="Run every GPU path segbench has (TensorFlow, JAX, PyTorch: whichever is installed), "
        "time it, check it against the float64 oracle and write a results folder with a short summary.",
    )
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu", help="gpu (default) or cpu (a tiny grid)")
    parser.add_argument("--out", help="results folder (default: gpu-check-<time> in the current folder)")
    parser.add_argument(
        "--backends",
        help="comma-separated, from numpy,tensorflow,jax,torch (default: tensorflow,jax,torch; "
        "with --device cpu numpy too)",
    )
    parser.add_argument(
        "--shapes", help="comma-separated BATCHxHEIGHTxWIDTH[xC] (default gpu: 16x1024x1024,16x2048x2048; cpu: 2x64x64)"
    )
    parser.add_argument("--classes", type=int, default=4, help="C where --shapes does not give it (default 4)")
    parser.add_argument("--time-budget", type=float, help="seconds after which no new cell starts (default gpu 330)")
    parser.add_argument("--wheels", metavar="DIR", help="first pip install --no-index --find-links DIR its wheels")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    install_blocker()
    started = time.time()
    try:
        default = GPU_SHAPES if args.device == "gpu" else CPU_SHAPES
        args.shape_list = parse_shapes(args.shapes or default, args.classes)
        asked = args.backends or ("tensorflow,jax,torch" if args.device == "gpu" else "numpy,tensorflow,jax,torch")
        backends = [b.strip() for b in asked.split(",") if b.strip()]
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown or not backends:
            raise ValueError(
                f"--backends: unknown {', '.join(unknown) or '(none given)'}; choices: {', '.join(BACKENDS)}"
            )
    except ValueError as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        return BAD_USAGE
    if args.wheels:
        problem = install_wheels(args.wheels)
        if problem:
            print(f"gpu-check: FAIL: {problem}", file=sys.stderr)
            return FAILED
    if args.device == "gpu" and (problem := gpu_visible()):
        print(f"gpu-check: FAIL: {problem}", file=sys.stderr)
        return FAILED
    if args.time_budget is None:
        args.time_budget = GPU_TIME_BUDGET_S if args.device == "gpu" else 3600.0
    out = Path(args.out or f"gpu-check-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
    out.mkdir(parents=True, exist_ok=True)
    env = host_environment(args)
    print(
        f"gpu-check --device {args.device}: {', '.join(backends)} at {', '.join(s.label for s in args.shape_list)}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="segbench-gpu-check-") as tmp:
        work = Path(tmp)
        for shape in args.shape_list:
            compute_oracle(shape, make_inputs(shape), work / f"oracle_{shape.key}.npz")
        print(f"oracle ready ({time.time() - started:.0f} s)", flush=True)
        deadline = started + args.time_budget
        for backend in backends:
            res = run_backend(backend, args, work, deadline)
            results.append(res)
            if res["status"] == "ok":
                cells = res["rows"]
                bad = sum(r["status"] != "ok" for r in cells)
                print(f"ran {backend}: {len(cells)} cells ({bad} not ok) in {res['seconds']} s", flush=True)
            else:
                print(f"skip {backend}: {res.get('reason')}", flush=True)
            (out / f"{backend}.log").write_text(res.pop("log", ""))
    cells, reads = assemble(results)
    env["backends"] = {r["backend"]: r.get("info") for r in results if r["status"] == "ok"}
    env["skipped"] = {r["backend"]: r.get("reason") for r in results if r["status"] != "ok"}
    names = [r["info"]["device_name"] for r in results if r["status"] == "ok" and r["info"].get("device_kind") == "GPU"]
    card = published_bandwidth(names[0]) if names else None
    env["published_bandwidth"] = {"card": card[0], "gb_per_s": card[1]} if card else None
    failures = verdict(args, results, cells, reads, card)
    env["verdict"] = {"pass": not failures, "failures": failures}
    (out / "environment.json").write_text(json.dumps(env, indent=2, default=_json_default) + "\n")
    written = write_tables(out, cells, reads)
    text = summary_text(args, env, results, cells, reads, card, failures, time.time() - started)
    (out / "summary.txt").write_text(text)
    print()
    print(text, end="")
    print(f"results in {out}/ (summary.txt, {', '.join(written)}, environment.json)")
    if failures:
        print(f"gpu-check: FAIL: {failures[0]}", file=sys.stderr)
        return FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
