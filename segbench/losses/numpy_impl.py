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


# ---------------------------------------------------------------------------------------------
# fused: the same losses written for speed. Assumes one-hot y_true (which validation checks):
# then each pixel's cross-entropy needs one probability, p[true class], so the log is taken once
# per pixel instead of C times, and no temporary of the inputs' size is made. The presence of
# each class is one reduction over the pixels of y_true, and the missing-annotation argmax is
# only computed for the images that have an absent object class (the only ones it can change).


def _true_class_probability(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """p[true class] per pixel (N, H, W), in one streaming pass over both inputs."""
    return np.einsum("...c,...c->...", y_true, y_pred)


def _absent_objects(y_true: np.ndarray) -> np.ndarray:
    """(N, C) bool: object classes (not background) that no pixel of the image is annotated with."""
    n, h, w, c = y_true.shape
    # Pixel counts per class as a batched (1 x HW) @ (HW x C) product: BLAS reads y_true once,
    # several times faster than numpy's max over the pixel axis with C innermost.
    counts = np.matmul(np.ones((1, h * w), dtype=y_true.dtype), y_true.reshape(n, h * w, c))[:, 0]
    absent = counts == 0
    absent[:, 0] = False
    return absent


def _fused(y_true, y_pred, reduction, drop_or_merge, gradient: bool):
    """Shared body: score each pixel, -log it, reduce; optionally the gradient, written once."""
    score = _true_class_probability(y_true, y_pred)
    drop = drop_or_merge(y_true, y_pred, score)  # may rewrite score in place; returns pixels to drop
    passes = clip_passes(score)
    clipped = np.clip(score, EPSILON, 1.0 - EPSILON, out=score)
    per_pixel = np.log(clipped)
    np.negative(per_pixel, out=per_pixel)
    if drop is not None:
        per_pixel[drop] = 0
    value = reduce(per_pixel, reduction)
    if not gradient:
        return value
    scale = y_pred.dtype.type(grad_scale(per_pixel, reduction))
    coef = np.divide(-scale, clipped, out=clipped)  # d loss / d score, reusing the score's buffer
    coef[~passes] = 0
    if drop is not None:
        coef[drop] = 0
    return value, coef


def _no_drop(y_true, y_pred, score):
    return None


def _missing_annotation_drop(y_true, y_pred, score):
    """Background pixels whose argmax is an absent object class: the seed's weight 0."""
    absent = _absent_objects(y_true)
    drop = np.zeros(score.shape, dtype=bool)
    for n in np.flatnonzero(absent.any(axis=1)):
        predicted = y_pred[n].argmax(axis=-1)
        drop[n] = (y_true[n, ..., 0] > 0) & absent[n][predicted]
    return drop


def _marginal_merge(y_true, y_pred, score):
    """Background pixels of images with absent classes are scored on p0 + their probabilities."""
    absent = _absent_objects(y_true)
    for n in np.flatnonzero(absent.any(axis=1)):
        merge = absent[n].astype(y_pred.dtype)
        merge[0] = 1
        background = y_true[n, ..., 0] > 0
        score[n][background] = (y_pred[n] @ merge)[background]
    return None


def _fused_grad_array(y_true, y_pred, coef, merged: bool) -> np.ndarray:
    grad = np.multiply(y_true, coef[..., None], dtype=y_pred.dtype)
    if merged:  # marginal: a background pixel's score sums the merged channels
        absent = _absent_objects(y_true)
        for n in np.flatnonzero(absent.any(axis=1)):
            merge = absent[n].astype(y_pred.dtype)
            merge[0] = 1
            background = y_true[n, ..., 0] > 0
            grad[n][background] = coef[n][background][:, None] * merge
    return grad


def _make_fused(drop_or_merge, merged=False):
    def value(y_true, y_pred, reduction="mean"):
        return _fused(y_true, y_pred, reduction, drop_or_merge, gradient=False)

    def value_and_grad(y_true, y_pred, reduction="mean"):
        loss, coef = _fused(y_true, y_pred, reduction, drop_or_merge, gradient=True)
        return loss, _fused_grad_array(y_true, y_pred, coef, merged)

    return value, value_and_grad


IMPLEMENTATIONS[("categorical_crossentropy", "fused")] = _make_fused(_no_drop)
IMPLEMENTATIONS[("missing_annotation_crossentropy", "fused")] = _make_fused(_missing_annotation_drop)
IMPLEMENTATIONS[("marginal_crossentropy", "fused")] = _make_fused(_marginal_merge, merged=True)
