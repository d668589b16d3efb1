"""TensorFlow implementations of the losses (plain TensorFlow ops; Keras 3 has no ``K.*``).

``reference`` is the seed's meaning vectorised: no Python loop over pixels or classes. Each
function takes ``(y_true, y_pred, reduction)`` and returns the reduced value; gradients come from
``tf.GradientTape`` in :mod:`segbench.modes`. Importing this module imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from segbench._constants import EPSILON, REDUCTIONS


def reduce(per_pixel: tf.Tensor, reduction: str) -> tf.Tensor:
    if reduction == "mean":
        return tf.reduce_mean(per_pixel)
    if reduction == "sum":
        return tf.reduce_sum(per_pixel)
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def clip(y_pred: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(y_pred, EPSILON, 1.0 - EPSILON)


def present_classes(y_true: tf.Tensor) -> tf.Tensor:
    """(N, C) bool: the class is annotated somewhere in the image."""
    return tf.reduce_any(y_true > 0, axis=[1, 2])


def categorical_crossentropy(y_true, y_pred, reduction="mean"):
    return reduce(-tf.reduce_sum(y_true * tf.math.log(clip(y_pred)), axis=-1), reduction)


def missing_annotation_crossentropy(y_true, y_pred, reduction="mean"):
    num_classes = y_pred.shape[-1]
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    present = present_classes(y_true)
    # The seed's product over c of (argmax != c OR class c annotated), as a logical AND over c.
    is_other = tf.not_equal(predicted[..., None], tf.range(num_classes, dtype=tf.int32))
    background_weight = tf.reduce_all(tf.logical_or(is_other, present[:, None, None, :]), axis=-1)
    background_weight = tf.stop_gradient(tf.cast(background_weight, y_pred.dtype))
    terms = y_true * tf.math.log(clip(y_pred))
    per_pixel = -(background_weight * terms[..., 0] + tf.reduce_sum(terms[..., 1:], axis=-1))
    return reduce(per_pixel, reduction)


def marginal_crossentropy(y_true, y_pred, reduction="mean"):
    present = present_classes(y_true)
    absent_objects = tf.concat([tf.zeros_like(present[:, :1]), tf.logical_not(present[:, 1:])], axis=1)
    absent = tf.cast(absent_objects, y_pred.dtype)[:, None, None, :]
    merged_background = y_pred[..., :1] + tf.reduce_sum(y_pred * absent, axis=-1, keepdims=True)
    merged = tf.concat([merged_background, y_pred[..., 1:]], axis=-1)
    return reduce(-tf.reduce_sum(y_true * tf.math.log(clip(merged)), axis=-1), reduction)


Implementation = Callable[..., tf.Tensor]

IMPLEMENTATIONS: dict[tuple[str, str], Implementation] = {
    ("categorical_crossentropy", "reference"): categorical_crossentropy,
    ("missing_annotation_crossentropy", "reference"): missing_annotation_crossentropy,
    ("marginal_crossentropy", "reference"): marginal_crossentropy,
}


# ---------------------------------------------------------------------------------------------
# fused: assumes one-hot y_true (validation checks it). Each pixel's cross-entropy needs only
# p[true class]: one multiply-and-reduce over C, then one clip and one log per pixel. The
# annotated class, the argmax of y_pred and p[true class] are reductions over C of the same
# inputs (XLA can fuse them into one pass); the class-presence vector is then computed from the
# per-pixel labels, a C-th of the input's size, instead of re-reading y_true. The marginal loss
# has to read y_pred a second time once presence is known: its floor is 1.5 reads of the inputs.


def _pixel_labels(y_true: tf.Tensor) -> tf.Tensor:
    """The annotated class of each pixel, (N, H, W) int32."""
    return tf.argmax(y_true, axis=-1, output_type=tf.int32)


def _present_from_labels(labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """(N, C) bool from the label map: a C-th of the reads of reducing y_true itself."""
    return tf.reduce_any(tf.equal(labels[..., None], tf.range(num_classes, dtype=tf.int32)), axis=[1, 2])


def _nll(score: tf.Tensor) -> tf.Tensor:
    return -tf.math.log(clip(score))


def fused_categorical_crossentropy(y_true, y_pred, reduction="mean"):
    return reduce(_nll(tf.reduce_sum(y_true * y_pred, axis=-1)), reduction)


def fused_missing_annotation_crossentropy(y_true, y_pred, reduction="mean"):
    num_classes = y_pred.shape[-1]
    labels = _pixel_labels(y_true)
    present = _present_from_labels(labels, num_classes)
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    # present[n, predicted] as a compare-and-reduce over C: XLA fuses it, where a gather with
    # batch_dims compiled to a loop several times slower than the whole loss on the CPU.
    is_predicted = tf.equal(predicted[..., None], tf.range(num_classes, dtype=tf.int32))
    predicted_present = tf.reduce_any(tf.logical_and(is_predicted, present[:, None, None, :]), axis=-1)
    keep = tf.logical_or(tf.not_equal(labels, 0), predicted_present)
    per_pixel = _nll(tf.reduce_sum(y_true * y_pred, axis=-1))
    return reduce(tf.where(keep, per_pixel, tf.zeros_like(per_pixel)), reduction)


def fused_marginal_crossentropy(y_true, y_pred, reduction="mean"):
    num_classes = y_pred.shape[-1]
    labels = _pixel_labels(y_true)
    present = _present_from_labels(labels, num_classes)
    merge = tf.logical_or(tf.logical_not(present), tf.equal(tf.range(num_classes), 0)[None, :])
    merged_background = tf.reduce_sum(y_pred * tf.cast(merge, y_pred.dtype)[:, None, None, :], axis=-1)
    score = tf.where(tf.equal(labels, 0), merged_background, tf.reduce_sum(y_true * y_pred, axis=-1))
    return reduce(_nll(score), reduction)


IMPLEMENTATIONS[("categorical_crossentropy", "fused")] = fused_categorical_crossentropy
IMPLEMENTATIONS[("missing_annotation_crossentropy", "fused")] = fused_missing_annotation_crossentropy
IMPLEMENTATIONS[("marginal_crossentropy", "fused")] = fused_marginal_crossentropy
