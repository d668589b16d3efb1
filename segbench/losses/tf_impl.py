"""TensorFlow implementations of the losses (plain TensorFlow ops; Keras 3 has no ``K.*``).

``reference`` is the seed's meaning vectorised: no Python loop over pixels or classes. Each
function takes ``(y_true, y_pred, reduction)`` and returns the reduced value; gradients come from
``tf.GradientTape`` in :mod:`segbench.modes`. Importing this module imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


# ---------------------------------------------------------------------------------------------
# blocked: written for XLA on the CPU, where the compiled HLO (docs/performance.md) shows what is
# fast and what is not. XLA:CPU splits an elementwise loop fusion over both cores, but emits a
# reduction over C (the minor axis) as a scalar inner loop and a reduction to a scalar as a
# single-threaded (ynn) kernel at a fraction of the memory bandwidth. So each image's pixels are
# cut into k blocks; every channel of every block is a slice (a strided read XLA vectorises), the
# per-pixel terms of the k blocks are added elementwise (one loop fusion that reads both inputs
# once), and only the remaining 1/k-sized map goes to a reduction. The blocks are interleaved: the
# pixels are rows of k groups of GROUP_PIXELS (one 256-bit vector of float32, XLA:CPU's preferred
# width) and block b is group b of every row, so the fusion reads each input as one sequential
# stream. Contiguous blocks (block b = the b-th k-th of the image) compile to the same loop but
# read 2k streams at once, 256 KiB apart at 512x512: on an AMD EPYC (Zen 4) that ran several times
# slower than on the Xeon it was written on (docs/performance.md, "Blocks on two CPUs"). When
# GROUP_PIXELS does not divide the pixel count, the pixels after the last whole row (fewer than
# k * GROUP_PIXELS) are the last, partial block: their terms are summed on their own. Class
# presence is a max over rows of y_true's pixels (a column reduction), a second read of y_true
# alone. Every loss here is
#     sum over pixels of keep * -log(clip(sum_c w_c * p_c)),
# with w (which channels a pixel's score sums) and keep from y_true, presence and the argmax; the
# gradient -keep * w_c / score (where the clip passes it) is written out over the whole tensor,
# since differentiating k*C slices compiles to a chain of pads many times slower than the loss.

Channels = list  # one (N, ...) tensor per class
MIN_BLOCK_PIXELS = 1024  # below this many pixels a block, an image is not cut (see _blocks)
GROUP_PIXELS = 8  # pixels of a block that are contiguous in memory: one vector of 8 float32


def _blocks(pixels: int, classes: int) -> int:
    """Blocks per image at most: 16 at C=4, fewer as C grows (XLA:CPU splits a fusion of more than
    about 64 slices into several, each re-reading the inputs), none below 1024 pixels a block
    (small images gain nothing and would only compile longer)."""
    return max(1, min(16, 64 // classes, pixels // MIN_BLOCK_PIXELS))


def _layout(pixels: int, classes: int) -> tuple[int, int, int]:
    """(blocks, rows, tail): each image's first rows * blocks * GROUP_PIXELS pixels are rows of
    ``blocks`` groups of GROUP_PIXELS; the last ``tail`` pixels are the partial block.

    The most blocks whose rows take every pixel, if GROUP_PIXELS divides the pixel count: with a
    tail, XLA copies the whole rows out of each input before the loop fusion (a slice that it
    cannot fuse through the reshape), two more passes over the inputs, which costs more than a
    bigger map left to the reduction. Otherwise _blocks' count, and a tail."""
    most = _blocks(pixels, classes)
    if pixels % GROUP_PIXELS == 0:
        blocks = max(k for k in range(1, most + 1) if pixels % (k * GROUP_PIXELS) == 0)
        return blocks, pixels // (blocks * GROUP_PIXELS), 0
    rows = pixels // (most * GROUP_PIXELS)
    return most, rows, pixels - rows * most * GROUP_PIXELS


LOG_GROUP = 4
"""Pixels (one from each of LOG_GROUP blocks) whose clipped scores are multiplied before one log:
a log costs more than the rest of a pixel's terms, and a product of four scores of at least
EPSILON (1e-7) is at least 1e-28, a normal float32; the product's rounding (3 u) is an absolute
error of 3 u in the log, no more than the four logs' own. Measured on the AMD EPYC Zen 5
(docs/performance.md): cross-entropy 3-8 % and marginal 6-11 % faster; the missing-annotation
loss, whose pixels pass a mask (a select before the product), 13 % slower, so it keeps one log
per pixel."""
TOTAL_PARTS = 16  # the map's total is 16 float32 partial sums (rows of a row reduction), then float64


def _column_total(x: tf.Tensor) -> tf.Tensor:
    """The sum of ``x`` as 16 float32 partial sums (a row reduction of 16 rows) added in float64.

    XLA:CPU merges chained float32 reductions into one reduction to a scalar, whose vector lanes
    each add their share one after the other: at batch 16, 512x512, C=32 (2 blocks, a map of 2M
    terms) that was 5.9e-4 off the oracle, over the sequential model's tolerance. 16 partial sums
    cut each lane's chain 16-fold, and the convert to float64 keeps XLA from merging them again:
    9.1e-6 there, and at C=4 as fast as the single reduction (docs/tolerances.md). Other splits
    measured on the AMD EPYC at C=4: a column reduction of rows of 64 or of 256 rows, or 32 or more
    partial sums, are exact to 5e-9 but 1.4x to 3x slower (XLA then emits its own reduction loop)."""
    count = x.shape.num_elements()
    parts = TOTAL_PARTS if count % TOTAL_PARTS == 0 else 1
    partial = tf.reduce_sum(tf.reshape(x, [parts, count // parts]), axis=1)
    return tf.cast(tf.reduce_sum(tf.cast(partial, tf.float64)), x.dtype)


def _presence(y_true: tf.Tensor) -> tf.Tensor:
    """(N, C) bool, by a column reduction of y_true: rows of several pixels' channels, max over rows."""
    n, h, w, c = y_true.shape
    per_row = 1
    while per_row * 2 * c <= 64 and (h * w) % (per_row * 2) == 0:
        per_row *= 2
    rows = tf.reduce_max(tf.reshape(y_true, [n, -1, per_row * c]), axis=1)
    return tf.reduce_max(tf.reshape(rows, [n, per_row, c]), axis=1) > 0


def _channels(x: tf.Tensor) -> Channels:
    return [x[..., k] for k in range(x.shape[-1])]


def _per_image(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """(N,) values shaped to broadcast against ``like`` (N, ...), whatever its rank."""
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


def _score(weights: Channels, probs: Channels) -> tf.Tensor:
    score = weights[0] * probs[0]
    for w, p in zip(weights[1:], probs[1:], strict=True):
        score = score + w * p
    return score


def _predicted_present(probs: Channels, present: tf.Tensor) -> tf.Tensor:
    """present[n, argmax p] per pixel (the lowest index on ties, as tf.argmax), as selects."""
    best, found = probs[0], tf.broadcast_to(_per_image(present[:, 0], probs[0]), probs[0].shape)
    for k in range(1, len(probs)):
        better = probs[k] > best
        best = tf.where(better, probs[k], best)
        found = tf.where(better, _per_image(present[:, k], probs[0]), found)
    return found


def _ce_terms(truth: Channels, probs: Channels, present: tf.Tensor | None) -> tuple[Channels, tf.Tensor | None]:
    return truth, None


def _missing_annotation_terms(truth: Channels, probs: Channels, present: tf.Tensor) -> tuple[Channels, tf.Tensor]:
    return truth, tf.logical_or(tf.equal(truth[0], 0), _predicted_present(probs, present))


def _marginal_terms(truth: Channels, probs: Channels, present: tf.Tensor) -> tuple[Channels, None]:
    absent = tf.cast(tf.logical_not(present), truth[0].dtype)
    return [truth[0]] + [t + truth[0] * _per_image(absent[:, k], t) for k, t in enumerate(truth[1:], start=1)], None


def _same_weights(y_true: tf.Tensor, present: tf.Tensor | None) -> tf.Tensor:
    return y_true


def _marginal_weights(y_true: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    """w of _marginal_terms as one tensor: background pixels also sum the absent classes."""
    objects = tf.not_equal(tf.range(y_true.shape[-1]), 0)
    absent = tf.cast(tf.logical_and(tf.logical_not(present), objects[None, :]), y_true.dtype)
    return y_true + y_true[..., :1] * absent[:, None, :]


def _blocked(
    terms: Any, gradient_weights: Any, fallback: Implementation, needs_presence: bool, log_group: int = LOG_GROUP
) -> Implementation:
    """A loss from its per-pixel terms: blocked for the value, whole tensors for the gradient; one
    log per ``log_group`` pixels (see LOG_GROUP)."""

    def kept_scores(truth: tf.Tensor, probs: tf.Tensor, present: tf.Tensor | None) -> tf.Tensor:
        """clip(score) of each pixel of (N, ..., C) inputs, 1 where the loss keeps no term (log 1 = 0)."""
        weights, keep = terms(_channels(truth), _channels(probs), present)
        score = clip(_score(weights, _channels(probs)))
        return score if keep is None else tf.where(keep, score, tf.ones_like(score))

    def pixel_terms(truth: tf.Tensor, probs: tf.Tensor, present: tf.Tensor | None) -> tf.Tensor:
        """keep * -log(clip(score)) of each pixel of (N, ..., C) inputs."""
        return -tf.math.log(kept_scores(truth, probs, present))

    def implementation(y_true, y_pred, reduction="mean"):
        if reduction == "none" or not (y_true.shape.is_fully_defined() and y_pred.shape.is_fully_defined()):
            return fallback(y_true, y_pred, reduction)  # a map, or shapes known only when run
        n, h, w, c = y_pred.shape
        pixels = h * w
        blocks, rows, tail = _layout(pixels, c)
        whole = pixels - tail
        scale = 1.0 / (n * pixels) if reduction == "mean" else 1.0
        present = _presence(y_true) if needs_presence else None

        @tf.custom_gradient
        def total(y_pred):
            truth, probs = tf.reshape(y_true, [n, pixels, c]), tf.reshape(y_pred, [n, pixels, c])
            value = tf.zeros([], y_pred.dtype)
            if rows:
                grouped_truth = tf.reshape(truth[:, :whole], [n, rows, blocks, GROUP_PIXELS, c])
                grouped_probs = tf.reshape(probs[:, :whole], [n, rows, blocks, GROUP_PIXELS, c])
                acc = None
                for first in range(0, blocks, log_group):  # one log per log_group pixels
                    product = None
                    for b in range(first, min(first + log_group, blocks)):
                        kept = kept_scores(grouped_truth[:, :, b], grouped_probs[:, :, b], present)
                        product = kept if product is None else product * kept
                    term = -tf.math.log(product)
                    acc = term if acc is None else acc + term
                value = _column_total(acc)
            if tail:  # the last, partial block
                value = value + tf.reduce_sum(pixel_terms(truth[:, whole:], probs[:, whole:], present))
            value = value * scale

            def gradient(upstream):
                if gradient_weights is None:  # score = p[true class]: the gradient is elementwise
                    passes = (y_true > 0) & (y_pred >= EPSILON) & (y_pred <= 1.0 - EPSILON)
                    return tf.where(passes, -(upstream * scale) * y_true / y_pred, tf.zeros_like(y_pred))
                # The score per pixel from channel slices (no reduction over C), then one
                # elementwise pass that writes the gradient.
                weights, keep = terms(_channels(truth), _channels(probs), present)
                score = _score(weights, _channels(probs))
                passes = tf.logical_and(score >= EPSILON, score <= 1.0 - EPSILON)
                if keep is not None:
                    passes = tf.logical_and(passes, keep)
                coefficient = tf.where(passes, -(upstream * scale) / score, tf.zeros_like(score))
                return tf.reshape(coefficient[..., None] * gradient_weights(truth, present), y_pred.shape)

            return value, gradient

        return total(y_pred)

    return implementation


IMPLEMENTATIONS[("categorical_crossentropy", "blocked")] = _blocked(
    _ce_terms, None, fused_categorical_crossentropy, False
)
IMPLEMENTATIONS[("missing_annotation_crossentropy", "blocked")] = _blocked(
    _missing_annotation_terms, _same_weights, fused_missing_annotation_crossentropy, True, log_group=1
)
IMPLEMENTATIONS[("marginal_crossentropy", "blocked")] = _blocked(
    _marginal_terms, _marginal_weights, fused_marginal_crossentropy, True
)
