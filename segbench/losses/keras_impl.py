"""The seed's three losses written once with ``keras.ops`` (Keras 3): the ``keras`` formulation.

The same code runs on every Keras backend: TensorFlow (modes eager, function, xla), JAX (jax,
jax-jit) and PyTorch (torch, torch-compile). Keras' backend is chosen per process, before Keras is
imported (``KERAS_BACKEND``); ``segbench run`` gives each backend a worker of its own.

The semantics are the reference's (:mod:`segbench.losses.numpy_impl`, :mod:`segbench.losses.tf_impl`), op for
op: the probabilities clipped to [EPSILON, 1 - EPSILON] with the gradient passing where the value
lies within the bounds, bounds included (``tf.clip_by_value``'s rule, which the oracle states; a
plain ``ops.clip`` differs at the bounds between backends), the argmax taking the lowest index on
ties, the missing-annotation weight a constant for the gradient. Each function takes ``(y_true,
y_pred, reduction)`` and returns the reduced value; gradients come from the mode (``jax.grad``,
``torch.autograd``, ``tf.GradientTape``). Importing this module imports Keras.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from segbench._constants import EPSILON, REDUCTIONS


def reduce(per_pixel: Any, reduction: str) -> Any:
    if reduction == "mean":
        # sum / count, not ops.mean: Keras' JAX backend takes float64's mean in float32 (Keras 3.15)
        return ops.divide(ops.sum(per_pixel), ops.cast(math.prod(per_pixel.shape), per_pixel.dtype))
    if reduction == "sum":
        return ops.sum(per_pixel)
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def clip(y_pred: Any) -> Any:
    """clip(y_pred, EPSILON, 1 - EPSILON); its gradient is 1 within the bounds (included), else 0."""
    # Each step keeps the inputs' dtype in float64 on every backend (Keras 3.15): ops.cast(1 - 1e-7,
    # "float64") first makes a float32 tensor on TensorFlow, and on PyTorch ops.maximum of two
    # float64 tensors returns float32; either would clip at float32's 1 - 1e-7 (0.99999988).
    low = ops.cast(ops.convert_to_tensor(np.asarray(EPSILON), dtype="float64"), y_pred.dtype)
    high = ops.cast(ops.convert_to_tensor(np.asarray(1.0 - EPSILON), dtype="float64"), y_pred.dtype)
    # where, not minimum/maximum: the gradient reaches y_pred exactly where it is kept
    return ops.where(ops.less(y_pred, low), low, ops.where(ops.greater(y_pred, high), high, y_pred))


def present_classes(y_true: Any) -> Any:
    """(N, C) bool: the class is annotated somewhere in the image."""
    return ops.any(ops.greater(y_true, 0), axis=(1, 2))


def categorical_crossentropy(y_true, y_pred, reduction="mean"):
    return reduce(-ops.sum(y_true * ops.log(clip(y_pred)), axis=-1), reduction)


def missing_annotation_crossentropy(y_true, y_pred, reduction="mean"):
    num_classes = y_pred.shape[-1]
    predicted = ops.argmax(y_pred, axis=-1)
    present = present_classes(y_true)
    # The seed's product over c of (argmax != c OR class c annotated), as a logical AND over c.
    is_other = ops.not_equal(ops.expand_dims(predicted, -1), ops.cast(ops.arange(num_classes), predicted.dtype))
    background_weight = ops.all(ops.logical_or(is_other, present[:, None, None, :]), axis=-1)
    background_weight = ops.stop_gradient(ops.cast(background_weight, y_pred.dtype))
    terms = y_true * ops.log(clip(y_pred))
    per_pixel = -(background_weight * terms[..., 0] + ops.sum(terms[..., 1:], axis=-1))
    return reduce(per_pixel, reduction)


def marginal_crossentropy(y_true, y_pred, reduction="mean"):
    present = present_classes(y_true)
    absent_objects = ops.concatenate([ops.zeros_like(present[:, :1]), ops.logical_not(present[:, 1:])], axis=1)
    absent = ops.cast(absent_objects, y_pred.dtype)[:, None, None, :]
    merged_background = y_pred[..., :1] + ops.sum(y_pred * absent, axis=-1, keepdims=True)
    merged = ops.concatenate([merged_background, y_pred[..., 1:]], axis=-1)
    return reduce(-ops.sum(y_true * ops.log(clip(merged)), axis=-1), reduction)


Implementation = Callable[..., Any]

IMPLEMENTATIONS: dict[tuple[str, str], Implementation] = {
    ("categorical_crossentropy", "keras"): categorical_crossentropy,
    ("missing_annotation_crossentropy", "keras"): missing_annotation_crossentropy,
    ("marginal_crossentropy", "keras"): marginal_crossentropy,
}
