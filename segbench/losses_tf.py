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
