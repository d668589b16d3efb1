"""JAX implementations of the seed's three losses, written to read their inputs as few times as possible.

Each loss is a plain function ``loss(y_true, y_pred, reduction="mean")`` of two arrays of shape
(N, H, W, C) (``y_true`` one-hot along C, ``y_pred`` probabilities) that returns the mean over all
pixels (``"sum"``: their sum; ``"none"``: the (N, H, W) map). The functions are not jitted: call
them as they are for JAX's op-by-op (eager) mode, or wrap them in ``jax.jit``; differentiate them
with ``jax.grad`` over ``y_pred``. Importing this module imports JAX and nothing of TensorFlow.

Semantics are those of :mod:`segbench.losses.oracle` (the float64 reference every backend is checked
against), for one-hot ``y_true``:

- each pixel is scored on ``p[true class]``, its loss is ``-log(clip(score, EPSILON, 1 - EPSILON))``,
  and the gradient passes through the clip where ``EPSILON <= score <= 1 - EPSILON`` (as
  ``tf.clip_by_value`` does; ``jnp.clip`` would halve it at the bounds);
- missing-annotation: a background pixel whose argmax (lowest index on ties) is an object class
  absent from its image's annotation has weight 0 (a constant for the gradient);
- marginal: a background pixel is scored on ``p[0]`` plus the probabilities of the classes absent
  from its image.

Half-precision inputs are computed in float32 (``segbench._constants.COMPUTE_DTYPES``); float64
needs ``jax_enable_x64``.

Memory traffic, under ``jax.jit`` (XLA fuses each loss into reductions over the pixels):

- cross-entropy: one read of both inputs (``sum_c y_true * y_pred``, clip, log, sum);
- missing-annotation: also one read. Which pixels to drop depends on the classes present in the
  whole image, which is only known once ``y_true`` has been read; instead of reading it twice, the
  same pass sums the background pixels' terms per (image, predicted class) alongside the class
  presence, and the absent classes' sums are left out afterwards (a (N, C) table). No term is
  added and subtracted again, so the sum keeps its precision;
- marginal: the merged background score depends on the absent classes non-linearly (a log), so
  class presence is a first pass over ``y_true`` and the loss a second over both: 1.5 reads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from segbench._constants import EPSILON, REDUCTIONS

__all__ = [
    "IMPLEMENTATIONS",
    "categorical_crossentropy",
    "marginal_crossentropy",
    "missing_annotation_crossentropy",
]


def promote(x: jax.Array) -> jax.Array:
    """Half precision computed in float32; other float dtypes as they are."""
    x = jnp.asarray(x)
    return x.astype(jnp.float32) if x.dtype in (jnp.float16, jnp.bfloat16) else x


def clip(x: jax.Array) -> jax.Array:
    """Clip to [EPSILON, 1 - EPSILON]; the gradient passes where the value is inside, bounds included."""
    lo = jnp.asarray(EPSILON, x.dtype)
    hi = jnp.asarray(1.0 - EPSILON, x.dtype)
    return jnp.where(x < lo, lo, jnp.where(x > hi, hi, x))


def _nll(score: jax.Array) -> jax.Array:
    return -jnp.log(clip(score))


def _reduce(per_pixel: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return jnp.mean(per_pixel)
    if reduction == "sum":
        return jnp.sum(per_pixel)
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _inputs(y_true, y_pred) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(y_true, y_pred) promoted, the background mask (N, H, W) and the class indices (C,)."""
    y_true, y_pred = promote(y_true), promote(y_pred)
    background = y_true[..., 0] > 0
    classes = jnp.arange(y_pred.shape[-1])
    return y_true, y_pred, background, classes


def _absent_objects(y_true: jax.Array, classes: jax.Array) -> jax.Array:
    """(N, C) bool: object classes (not background) that no pixel of the image is annotated with."""
    return (jnp.max(y_true, axis=(1, 2)) <= 0) & (classes > 0)


def categorical_crossentropy(y_true, y_pred, reduction: str = "mean") -> jax.Array:
    """Mean over pixels of ``-log(clip(p[true class]))``."""
    y_true, y_pred = promote(y_true), promote(y_pred)
    return _reduce(_nll(jnp.sum(y_true * y_pred, axis=-1)), reduction)


def missing_annotation_crossentropy(y_true, y_pred, reduction: str = "mean") -> jax.Array:
    """Cross-entropy without the background pixels that predict an object absent from the annotation."""
    _check_reduction(reduction)
    y_true, y_pred, background, classes = _inputs(y_true, y_pred)
    term = _nll(jnp.sum(y_true * y_pred, axis=-1))
    predicted = jnp.argmax(y_pred, axis=-1)  # lowest index on ties
    is_predicted = predicted[..., None] == classes  # (N, H, W, C)
    absent = _absent_objects(y_true, classes)
    if reduction == "none":
        dropped = background & jnp.any(is_predicted & absent[:, None, None, :], axis=-1)
        return jnp.where(dropped, jnp.zeros_like(term), term)
    # One pass: per image, the background terms by predicted class and the object pixels' terms.
    zero = jnp.zeros((), term.dtype)
    background_by_class = jnp.sum(jnp.where(background[..., None] & is_predicted, term[..., None], zero), axis=(1, 2))
    objects = jnp.sum(jnp.where(background, zero, term), axis=(1, 2))
    total = jnp.sum(objects) + jnp.sum(jnp.where(absent, zero, background_by_class))
    return total / term.size if reduction == "mean" else total


def marginal_crossentropy(y_true, y_pred, reduction: str = "mean") -> jax.Array:
    """Cross-entropy where a background pixel is scored on p[0] plus the absent classes' probabilities."""
    y_true, y_pred, background, classes = _inputs(y_true, y_pred)
    merge = (_absent_objects(y_true, classes) | (classes == 0)).astype(y_pred.dtype)  # (N, C)
    # Which channels a pixel's score sums: its own class, or for background the merged ones.
    weights = jnp.where(background[..., None], merge[:, None, None, :], y_true)
    return _reduce(_nll(jnp.sum(weights * y_pred, axis=-1)), reduction)


IMPLEMENTATIONS = {
    "categorical_crossentropy": categorical_crossentropy,
    "missing_annotation_crossentropy": missing_annotation_crossentropy,
    "marginal_crossentropy": marginal_crossentropy,
}
"""Loss name (as in segbench.LOSSES) -> its JAX function."""
