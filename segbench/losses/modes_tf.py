"""Turn a TensorFlow loss into an eager, tf.function or XLA callable, with or without gradient."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from segbench._constants import compute_dtype

# segbench builds a fresh tf.function per cell on purpose; TensorFlow's "excessive retracing"
# warning counts those as retraces of one function and would only mislead. Tracing per shape is
# tested (tests/losses/test_registry.py).
tf.get_logger().setLevel("ERROR")


def promote(x: tf.Tensor) -> tf.Tensor:
    """Half precision computed in float32 (see segbench._constants.COMPUTE_DTYPES)."""
    target = compute_dtype(x.dtype.name)
    return x if target == x.dtype.name else tf.cast(x, target)


def build(impl: Any, mode: Any, *, reduction: str, gradient: bool) -> Any:
    """A callable ``(y_true, y_pred)`` running ``impl`` as ``mode`` says (see registry.Mode)."""

    def forward(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_true, y_pred = promote(y_true), promote(y_pred)
        return impl(y_true, y_pred, reduction)

    def forward_backward(y_true: tf.Tensor, y_pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        y_true, y_pred = promote(y_true), promote(y_pred)
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = impl(y_true, y_pred, reduction)
            target = tf.reduce_sum(value) if reduction == "none" else value
        return value, tape.gradient(target, y_pred)

    body = forward_backward if gradient else forward
    if mode.graph:
        # Inputs are always converted to tensors first, so one shape and dtype trace once.
        body = tf.function(body, jit_compile=mode.jit_compile)

    def call(y_true: Any, y_pred: Any) -> Any:
        return body(tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred))

    call.tf_function = body if mode.graph else None
    return call
