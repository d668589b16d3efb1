"""NumPy implementations of the losses, each with its analytic gradient.

``reference`` follows the seed post: clip, then a loop over the classes adding
``y_true[..., c] * log(p[..., c])``, in the dtype of the inputs. Each function takes
``(y_true, y_pred, reduction)`` and returns the reduced value; each ``*_grad`` returns
``(value, d value / d y_pred)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from segbench._constants import EPSILON, REDUCTIONS


def reduce(per_pixel: np.ndarray, reduction: str) -> np.ndarray:
    """Reduce a per-pixel map (N, H, W) as asked, keeping its dtype."""
    if reduction == "mean":
        return per_pixel.mean(dtype=per_pixel.dtype)
    if reduction == "sum":
        return per_pixel.sum(dtype=per_pixel.dtype)
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def grad_scale(per_pixel: np.ndarray, reduction: str) -> float:
    """d(reduced)/d(per-pixel term): 1/(N*H*W) for mean, 1 for sum (and for none: of its sum)."""
    return 1.0 / per_pixel.size if reduction == "mean" else 1.0


def clip(y_pred: np.ndarray) -> np.ndarray:
    return np.clip(y_pred, EPSILON, 1.0 - EPSILON)


def clip_passes(y_pred: np.ndarray) -> np.ndarray:
    """Where the gradient flows through the clip (tf.clip_by_value passes it at the bounds)."""
    lo, hi = y_pred.dtype.type(EPSILON), y_pred.dtype.type(1.0 - EPSILON)
    return (y_pred >= lo) & (y_pred <= hi)


def present_classes(y_true: np.ndarray) -> np.ndarray:
    """(N, C) bool: the class is annotated somewhere in the image (the seed's ``K.any``)."""
    return y_true.any(axis=(1, 2))


def _class_terms(y_true: np.ndarray, p: np.ndarray, first: int) -> np.ndarray:
    """sum over c >= first of y_true[..., c] * log(p[..., c]), looping over classes as the seed."""
    total = np.zeros(y_true.shape[:-1], dtype=p.dtype)
    for c in range(first, y_true.shape[-1]):
        total += y_true[..., c] * np.log(p[..., c])
    return total


def _ce_gradient(y_true: np.ndarray, y_pred: np.ndarray, p: np.ndarray, scale: float) -> np.ndarray:
    return np.where(clip_passes(y_pred), -y_true / p, 0).astype(y_pred.dtype) * y_pred.dtype.type(scale)


def categorical_crossentropy(y_true, y_pred, reduction="mean"):
    return reduce(-_class_terms(y_true, clip(y_pred), 0), reduction)


def categorical_crossentropy_grad(y_true, y_pred, reduction="mean"):
    p = clip(y_pred)
    per_pixel = -_class_terms(y_true, p, 0)
    return reduce(per_pixel, reduction), _ce_gradient(y_true, y_pred, p, grad_scale(per_pixel, reduction))


def _background_weight(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The seed's weight: product over c of (argmax != c OR class c annotated), as a logical AND."""
    predicted = y_pred.argmax(axis=-1)
    present = present_classes(y_true)
    weight = np.ones(predicted.shape, dtype=bool)
    for c in range(y_true.shape[-1]):
        weight &= (predicted != c) | present[:, c, None, None]
    return weight


def _missing_annotation(y_true, y_pred):
    p = clip(y_pred)
    weight = _background_weight(y_true, y_pred).astype(y_pred.dtype)
    per_pixel = -(weight * y_true[..., 0] * np.log(p[..., 0]) + _class_terms(y_true, p, 1))
    return p, weight, per_pixel


def missing_annotation_crossentropy(y_true, y_pred, reduction="mean"):
    return reduce(_missing_annotation(y_true, y_pred)[2], reduction)


def missing_annotation_crossentropy_grad(y_true, y_pred, reduction="mean"):
    p, weight, per_pixel = _missing_annotation(y_true, y_pred)
    grad = _ce_gradient(y_true, y_pred, p, grad_scale(per_pixel, reduction))
    grad[..., 0] *= weight
    return reduce(per_pixel, reduction), grad


def _marginal(y_true, y_pred):
    """Merge the probabilities of each image's absent object classes into background."""
    absent = ~present_classes(y_true)
    absent[:, 0] = False
    merged = y_pred[..., 0].copy()
    for c in range(1, y_true.shape[-1]):
        merged += absent[:, c, None, None] * y_pred[..., c]
    merged_clipped = clip(merged)
    per_pixel = -(y_true[..., 0] * np.log(merged_clipped) + _class_terms(y_true, clip(y_pred), 1))
    return absent, merged, merged_clipped, per_pixel


def marginal_crossentropy(y_true, y_pred, reduction="mean"):
    return reduce(_marginal(y_true, y_pred)[3], reduction)


def marginal_crossentropy_grad(y_true, y_pred, reduction="mean"):
    absent, merged, merged_clipped, per_pixel = _marginal(y_true, y_pred)
    scale = grad_scale(per_pixel, reduction)
    grad = _ce_gradient(y_true, y_pred, clip(y_pred), scale)
    d_merged = np.where(clip_passes(merged), -y_true[..., 0] / merged_clipped, 0).astype(y_pred.dtype)
    d_merged *= y_pred.dtype.type(scale)
    grad[..., 0] = d_merged
    for c in range(1, y_true.shape[-1]):
        grad[..., c] += absent[:, c, None, None] * d_merged
    return reduce(per_pixel, reduction), grad


Implementation = Callable[..., object]

# (loss, formulation) -> (value function, value-and-gradient function)
IMPLEMENTATIONS: dict[tuple[str, str], tuple[Implementation, Implementation]] = {
    ("categorical_crossentropy", "reference"): (categorical_crossentropy, categorical_crossentropy_grad),
    ("missing_annotation_crossentropy", "reference"): (
        missing_annotation_crossentropy,
        missing_annotation_crossentropy_grad,
    ),
    ("marginal_crossentropy", "reference"): (marginal_crossentropy, marginal_crossentropy_grad),
}
