"""The JAX and PyTorch losses agree with the float64 oracle: value (every reduction, every dtype)
and gradient (jax.grad, torch.autograd), op by op and compiled; importing them imports no TensorFlow.

Each backend's tests skip when it is not installed (pytest.importorskip).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close_to_oracle, assert_gradient_close

from segbench import make_scene
from segbench._constants import compute_dtype
from segbench.losses import oracle
from segbench.losses.scenes import edge_scene

LOSSES = ("categorical_crossentropy", "missing_annotation_crossentropy", "marginal_crossentropy")
# Shapes whose pixels divide into nothing in particular (odd, non-square), C from 2 to 9.
SHAPES = [(1, 8, 8, 2), (2, 12, 20, 4), (3, 16, 16, 9), (2, 24, 17, 4), (1, 7, 5, 3)]
ROOT = Path(__file__).resolve().parents[2]


@cache
def scene(batch, height, width, classes, dtype="float32"):
    missing = min(batch, 2) if classes > 2 else 0
    return make_scene(batch, height, width, classes, missing=missing, seed=batch + classes, dtype=dtype)


class Backend:
    """One backend's way of running a loss: value and value-and-gradient, as numpy arrays."""

    def __init__(self, name: str, mode: str):
        self.name, self.mode = name, mode
        if name == "jax":
            self.lib = pytest.importorskip("jax")
            from segbench.losses import jax_impl as losses
        else:
            self.lib = pytest.importorskip("torch")
            from segbench.losses import torch_impl as losses
        self.losses = losses

    def value(self, loss, y_true, y_pred, reduction="mean"):
        return self.value_and_grad(loss, y_true, y_pred, reduction, gradient=False)[0]

    def value_and_grad(self, loss, y_true, y_pred, reduction="mean", gradient=True):
        fn = self.losses.IMPLEMENTATIONS[loss]
        if gradient:  # as segbench's TensorFlow modes: half precision promoted before differentiating
            y_true = y_true.astype(compute_dtype(y_true.dtype.name))
            y_pred = y_pred.astype(compute_dtype(y_pred.dtype.name))
        if self.name == "jax":
            jax = self.lib

            def f(t, p):
                return fn(t, p, reduction)

            def target(t, p):
                out = f(t, p)
                return out.sum() if reduction == "none" else out, out

            if gradient:
                call = jax.value_and_grad(target, argnums=1, has_aux=True)
                call = jax.jit(call) if self.mode == "jit" else call
                (_, value), grad = call(y_true, y_pred)
                return np.asarray(value), np.asarray(grad)
            call = jax.jit(f) if self.mode == "jit" else f
            return np.asarray(call(y_true, y_pred)), None
        torch = self.lib
        call = torch.compile(fn) if self.mode == "compile" else fn
        t = torch.from_numpy(np.array(y_true)) if y_true.dtype.name != "bfloat16" else _torch_bf16(y_true)
        p = torch.from_numpy(np.array(y_pred)) if y_pred.dtype.name != "bfloat16" else _torch_bf16(y_pred)
        if not gradient:
            with torch.no_grad():
                return call(t, p, reduction).numpy(), None
        p.requires_grad_(True)
        out = call(t, p, reduction)
        (grad,) = torch.autograd.grad(out.sum() if reduction == "none" else out, p)
        return out.detach().numpy(), grad.numpy()


def _torch_bf16(array):
    import torch

    return torch.from_numpy(np.asarray(array, dtype=np.float32)).to(torch.bfloat16)


EAGER_AND_JIT = [("jax", "eager"), ("jax", "jit"), ("torch", "eager")]


@pytest.fixture(params=EAGER_AND_JIT, ids=lambda b: f"{b[0]}-{b[1]}")
def backend(request):
    return Backend(*request.param)


def check(backend, loss, y_true, y_pred, reduction="mean", dtype="float32"):
    terms = y_true.size // y_true.shape[-1] if reduction != "none" else 1
    expected = oracle.loss_value(loss, y_true, y_pred, reduction)
    value = backend.value(loss, y_true, y_pred, reduction)
    assert value.dtype.name == compute_dtype(dtype)
    assert_close_to_oracle(value, expected, dtype, terms)
    value, grad = backend.value_and_grad(loss, y_true, y_pred, reduction)
    assert_close_to_oracle(value, expected, dtype, terms)
    assert grad.shape == y_pred.shape and np.isfinite(grad).all()
    assert_gradient_close(grad, oracle.gradient(loss, y_true, y_pred, reduction), dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("loss", LOSSES)
def test_agrees_with_oracle(backend, loss, shape):
    s = scene(*shape)
    check(backend, loss, s.y_true, s.y_pred)


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("loss", LOSSES)
def test_reductions(backend, loss, reduction):
    s = scene(2, 12, 20, 4)
    check(backend, loss, s.y_true, s.y_pred, reduction)
    assert backend.value(loss, s.y_true, s.y_pred, "none").shape == (2, 12, 20)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
def test_other_dtypes(backend, loss, dtype):
    """Half precision is computed in float32; float64 in float64 (JAX: with jax_enable_x64)."""
    s = make_scene(2, 16, 16, 4, missing=1, dtype=dtype)
    if backend.name == "jax":
        with _x64(backend.lib, dtype == "float64"):
            check(backend, loss, s.y_true, s.y_pred, dtype=dtype)
    else:
        check(backend, loss, s.y_true, s.y_pred, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
def test_edge_cases(backend, loss, dtype):
    """Ties in the argmax, all-erased images, probabilities exactly 0, 1 and at the clip bounds."""
    s = edge_scene(4, 32, 32, 4, dtype=dtype)
    x64 = _x64(backend.lib, dtype == "float64") if backend.name == "jax" else contextlib.nullcontext()
    with x64:
        for reduction in ("mean", "none"):
            check(backend, loss, s.y_true, s.y_pred, reduction, dtype)


def test_tie_rule_is_lowest_index(backend):
    # Only class 1 is annotated; pixel 0: background ties class 1 (background wins, kept); pixel 1:
    # classes 1 and 2 tie (1, annotated, wins: kept); pixel 2: classes 2 and 3 tie (2, absent: dropped).
    y_true = np.zeros((1, 1, 4, 4), np.float32)
    y_true[0, 0, :3, 0] = 1
    y_true[0, 0, 3, 1] = 1
    y_pred = np.array([[[[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5], [0, 1, 0, 0]]]], np.float32)
    per_pixel = backend.value("missing_annotation_crossentropy", y_true, y_pred, "none")[0, 0]
    assert per_pixel[0] > 0 and per_pixel[1] > 0 and per_pixel[2] == 0
    check(backend, "missing_annotation_crossentropy", y_true, y_pred)


def test_unknown_reduction_names_the_choices(backend):
    s = scene(1, 8, 8, 2)
    for loss in LOSSES:
        with pytest.raises(ValueError, match="mean, sum, none"):
            backend.value(loss, s.y_true, s.y_pred, "median")


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_torch_compile_agrees_with_oracle(loss):
    """torch.compile (Inductor; needs a C++ compiler on the CPU): value and gradient, odd shape."""
    compiled = Backend("torch", "compile")
    s = scene(2, 24, 17, 4)
    check(compiled, loss, s.y_true, s.y_pred)


def test_jax_arrays_stay_on_their_device():
    jax = pytest.importorskip("jax")
    from segbench.losses import jax_impl as losses_jax

    s = scene(2, 12, 20, 4)
    device = jax.devices()[0]
    y_true, y_pred = jax.device_put(s.y_true, device), jax.device_put(s.y_pred, device)
    for fn in losses_jax.IMPLEMENTATIONS.values():
        assert jax.jit(fn)(y_true, y_pred).devices() == {device}


@pytest.mark.slow
def test_importing_the_backends_imports_no_tensorflow():
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    code = (
        "import sys; import segbench, segbench.losses.jax_impl, segbench.losses.torch_impl; "
        "import segbench.measurement.gpu_check; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=_env())


def _x64(jax, on: bool):
    """jax.enable_x64 (newer JAX) or jax.experimental.enable_x64 (older) as a context manager."""
    enable = getattr(jax, "enable_x64", None)
    if enable is None:
        from jax.experimental import enable_x64 as enable
    return enable(on)


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}
