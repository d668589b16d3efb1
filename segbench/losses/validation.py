"""Input checks shared by every loss and mode.

Validation runs in numpy on the host so that it gives the same message for every mode; timed code
skips it (``loss_fn(..., validate=False)``) so that it does not distort a benchmark.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

# How far a row of y_pred may sum away from 1, per dtype: a softmax rounded to the dtype.
ROW_SUM_ATOL = {"float16": 1e-2, "bfloat16": 3e-2, "float32": 1e-4, "float64": 1e-8}


def as_numpy(array: Any) -> np.ndarray:
    """numpy view of a numpy array, a TensorFlow eager tensor or a nested list."""
    if hasattr(array, "numpy") and callable(array.numpy):
        return array.numpy()
    return np.asarray(array)


def dtype_name(array: Any) -> str:
    dtype = getattr(array, "dtype", None)
    if dtype is None:
        return np.asarray(array).dtype.name
    return getattr(dtype, "name", str(dtype))


def _check_float(name: str, array: np.ndarray) -> None:
    if array.dtype.name not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point array ({', '.join(FLOAT_DTYPES)}), got dtype {array.dtype.name}"
        )


def _symbolic(array: Any) -> bool:
    """A tensor of a graph being traced (inside tf.function, e.g. Keras' train step): no values yet."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(array, tf.Tensor) and not hasattr(array, "_numpy")


def _validate_symbolic(y_true: Any, y_pred: Any) -> None:
    """What can be checked while tracing: dtypes and the static shapes (values are checked eagerly)."""
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        dtype = array.dtype.name
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be a floating-point tensor ({', '.join(FLOAT_DTYPES)}), got dtype {dtype}")
        if array.shape.rank is not None and array.shape.rank != 4:
            raise ValueError(f"{name} must have rank 4 (N, H, W, C), got shape {array.shape}")
    if not y_true.shape.is_compatible_with(y_pred.shape):
        raise ValueError(f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}")


def validate_inputs(y_true: Any, y_pred: Any) -> None:
    """Raise a ValueError/TypeError naming the argument if the pair is not a valid loss input.

    Valid: two float arrays of one dtype and shape (N, H, W, C) with N, H, W >= 1 and C >= 2,
    finite, y_true one-hot along C, y_pred in [0, 1] with each pixel's row summing to 1. Inside a
    graph being traced (a user's tf.function, Keras' ``model.fit``) only dtypes and static shapes
    can be checked: the values do not exist yet.
    """
    if _symbolic(y_true) or _symbolic(y_pred):
        _validate_symbolic(y_true, y_pred)
        return
    true = as_numpy(y_true)
    pred = as_numpy(y_pred)
    for name, array in (("y_true", true), ("y_pred", pred)):
        _check_float(name, array)
        if array.ndim != 4:
            raise ValueError(f"{name} must have rank 4 (N, H, W, C), got shape {array.shape}")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {true.shape} and {pred.shape}")
    if true.dtype != pred.dtype:
        raise TypeError(f"y_true and y_pred must have the same dtype, got {true.dtype.name} and {pred.dtype.name}")
    n, h, w, c = true.shape
    if c < 2:
        raise ValueError(f"y_true must have at least 2 classes (background + 1) on its last axis, got C={c}")
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"y_true is empty: shape {true.shape}; expected N, H and W >= 1")
    # Checked in the inputs' own dtype, one image at a time: no copy of an input is made, and the
    # temporaries (boolean masks, per-pixel sums) are those of one image.
    zero, one = true.dtype.type(0), true.dtype.type(1)
    atol = ROW_SUM_ATOL[pred.dtype.name]
    low, high, worst = np.inf, -np.inf, 0.0
    for image in range(n):
        t, p = true[image], pred[image]
        for name, array in (("y_true", t), ("y_pred", p)):
            if not np.isfinite(array).all():
                raise ValueError(f"{name} contains NaN or Inf")
        if not ((t == zero) | (t == one)).all() or not (t.sum(axis=-1, dtype=np.float64) == 1.0).all():
            raise ValueError("y_true must be one-hot along the last axis: values 0 or 1, exactly one 1 per pixel")
        low, high = min(low, float(p.min())), max(high, float(p.max()))
        worst = max(worst, float(np.abs(p.sum(axis=-1, dtype=np.float64) - 1.0).max()))
    if low < 0.0 or high > 1.0:
        raise ValueError(f"y_pred must lie in [0, 1], got values in [{low:g}, {high:g}]")
    if worst > atol:
        raise ValueError(
            f"y_pred rows must sum to 1 along the last axis (within {atol:g} for {pred.dtype.name}), "
            f"worst pixel is off by {worst:g}"
        )
