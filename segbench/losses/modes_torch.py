"""Turn a PyTorch loss (keras.ops on the PyTorch backend, or torch ops) into an eager or
``torch.compile`` callable, with or without gradient (``torch.autograd.grad``). The forward pass
runs under ``torch.no_grad`` (no autograd graph is recorded, as TensorFlow and JAX record none for
a forward pass); with gradient the compiled function is the forward, and AOTAutograd compiles its
backward, as in a training step. Importing this module imports PyTorch."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch

from segbench._constants import compute_dtype

# No on-disk caches of compiled graphs (Inductor's FX graph and AOTAutograd caches, on by default):
# torch.compile's first call must compile, as XLA's does, for compile_s to be real.
with contextlib.suppress(Exception):
    import torch._inductor.config as _inductor_config

    _inductor_config.fx_graph_cache = False
    _inductor_config.autotune_local_cache = False
    torch._functorch.config.enable_autograd_cache = False

# Keras' dtype lattice is an lru_cache'd function; Dynamo traces through it and warns once per process.
warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")


def dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def promote(x: Any) -> Any:
    """Half precision computed in float32 (see segbench._constants.COMPUTE_DTYPES)."""
    target = compute_dtype(dtype_name(x))
    return x if target == dtype_name(x) else x.to(getattr(torch, target))


def as_tensor(array: Any, device: Any = None) -> Any:
    """A torch tensor of ``array`` (numpy, including ml_dtypes' bfloat16, which torch cannot read)."""
    if isinstance(array, torch.Tensor):
        return array if device is None else array.to(device)
    array = np.array(array, copy=not (isinstance(array, np.ndarray) and array.flags.writeable))
    if array.dtype.name == "bfloat16":
        tensor = torch.from_numpy(np.ascontiguousarray(array).view(np.int16)).view(torch.bfloat16)
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device is None else tensor.to(device)


def to_numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def build(impl: Any, mode: Any, *, reduction: str, gradient: bool) -> Any:
    """A callable ``(y_true, y_pred)`` running ``impl`` as ``mode`` says: eager, or torch.compile."""

    def forward(y_true: Any, y_pred: Any) -> Any:
        return impl(y_true, y_pred, reduction)

    if mode.jit_compile:
        # Dynamo caches compiled code per code object: every cell's ``forward`` shares one, so
        # without a reset the 9th cell of a worker would pass its recompile limit and silently run
        # eagerly. Each cell compiles afresh (its first call, compile_s, includes it).
        torch._dynamo.reset()
    compiled = torch.compile(forward) if mode.jit_compile else forward

    if not gradient:

        def call(y_true: Any, y_pred: Any) -> Any:
            with torch.no_grad():
                return compiled(promote(as_tensor(y_true)), promote(as_tensor(y_pred)))

    else:

        def call(y_true: Any, y_pred: Any) -> Any:
            y_pred = promote(as_tensor(y_pred)).detach().requires_grad_(True)
            value = compiled(promote(as_tensor(y_true)), y_pred)
            target = value.sum() if reduction == "none" else value
            (grad,) = torch.autograd.grad(target, y_pred)
            return value.detach(), grad

    call.compiled = compiled if mode.jit_compile else None
    return call


def float64_value_and_gradient(fn: Any, y_true: Any, y_pred: Any, reduction: str) -> tuple[Any, Any]:
    """``fn``'s output (unreduced) and the gradient of its reduction, in float64."""
    y = as_tensor(np.asarray(y_true, dtype=np.float64))
    p = as_tensor(np.asarray(y_pred, dtype=np.float64)).requires_grad_(True)
    out = fn(y, p)
    target = out.mean() if reduction == "mean" else out.sum()
    (grad,) = torch.autograd.grad(target, p)
    return to_numpy(out).astype(np.float64), to_numpy(grad).astype(np.float64)
