"""Input checks shared by every loss and mode.

Validation runs in numpy on the host so that it gives the same message for every mode; timed code
skips it (``loss_fn(..., validate=False)``) so that it does not distort a benchmark.
"""

from __future__ import annotations

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


def validate_inputs(y_true: Any, y_pred: Any) -> None:
    """Raise a ValueError/TypeError naming the argument if the pair is not a valid loss input.

    Valid: two float arrays of one dtype and shape (N, H, W, C) with N, H, W >= 1 and C >= 2,
    finite, y_true one-hot along C, y_pred in [0, 1] with each pixel's row summing to 1.
    """
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
    true64 = true.astype(np.float64, copy=False)
    pred64 = pred.astype(np.float64, copy=False)
    for name, array in (("y_true", true64), ("y_pred", pred64)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or Inf")
    if not np.isin(true64, (0.0, 1.0)).all() or not (true64.sum(axis=-1) == 1.0).all():
        raise ValueError("y_true must be one-hot along the last axis: values 0 or 1, exactly one 1 per pixel")
    if pred64.min() < 0.0 or pred64.max() > 1.0:
        raise ValueError(f"y_pred must lie in [0, 1], got values in [{pred64.min():g}, {pred64.max():g}]")
    atol = ROW_SUM_ATOL[pred.dtype.name]
    worst = float(np.abs(pred64.sum(axis=-1) - 1.0).max())
    if worst > atol:
        raise ValueError(
            f"y_pred rows must sum to 1 along the last axis (within {atol:g} for {pred.dtype.name}), "
            f"worst pixel is off by {worst:g}"
        )
