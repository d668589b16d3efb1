"""Turn a JAX-traceable loss (keras.ops on the JAX backend, or jax.numpy) into an eager or
``jax.jit`` callable, with or without gradient (``jax.value_and_grad``). Importing this module
imports JAX and turns on 64-bit types (``jax_enable_x64``): without it JAX would silently compute
float64 inputs in float32. Float32 inputs stay float32 (Python scalars are weakly typed)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from segbench._constants import compute_dtype

jax.config.update("jax_enable_x64", True)
# No persistent compilation cache (JAX_COMPILATION_CACHE_DIR): compile time must be real, as for TensorFlow.
jax.config.update("jax_enable_compilation_cache", False)


def dtype_name(x: Any) -> str:
    return jnp.dtype(x.dtype).name


def promote(x: Any) -> Any:
    """Half precision computed in float32 (see segbench._constants.COMPUTE_DTYPES)."""
    target = compute_dtype(dtype_name(x))
    return x if target == dtype_name(x) else x.astype(target)


def build(impl: Any, mode: Any, *, reduction: str, gradient: bool) -> Any:
    """A callable ``(y_true, y_pred)`` running ``impl`` as ``mode`` says: eager, or jax.jit."""

    def forward(y_true: Any, y_pred: Any) -> Any:
        return impl(promote(y_true), promote(y_pred), reduction)

    def forward_backward(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        y_true, y_pred = promote(y_true), promote(y_pred)

        def target(p: Any) -> tuple[Any, Any]:
            value = impl(y_true, p, reduction)
            return (jnp.sum(value) if reduction == "none" else value), value

        (_, value), grad = jax.value_and_grad(target, has_aux=True)(y_pred)
        return value, grad

    body = forward_backward if gradient else forward
    if mode.jit_compile:
        body = jax.jit(body)

    def call(y_true: Any, y_pred: Any) -> Any:
        return body(jnp.asarray(y_true), jnp.asarray(y_pred))

    call.jitted = body if mode.jit_compile else None
    return call


def float64_value_and_gradient(fn: Any, y_true: Any, y_pred: Any, reduction: str) -> tuple[Any, Any]:
    """``fn``'s output (unreduced) and the gradient of its reduction, in float64 (an oracle that
    checks precision, not logic, for a loss with no numpy reference)."""
    import numpy as np

    y = jnp.asarray(np.asarray(y_true, dtype=np.float64))
    p = jnp.asarray(np.asarray(y_pred, dtype=np.float64))

    def target(p: Any) -> tuple[Any, Any]:
        out = fn(y, p)
        return (jnp.mean(out) if reduction == "mean" else jnp.sum(out)), out

    (_, out), grad = jax.value_and_grad(target, has_aux=True)(p)
    return np.asarray(out, dtype=np.float64), np.asarray(grad, dtype=np.float64)
