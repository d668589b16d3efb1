"""The standard segmentation losses, registered through the public API (``segbench.register_loss``)
like any user's loss, and loaded through the entry-point group ``segbench.losses``.

Definitions (each per image n, over its pixels and classes; eps = 1e-7, Keras' ``epsilon()``):

- ``soft_dice``: 1 - 2 sum(y p) / (sum(y) + sum(p) + eps). Keras' ``keras.losses.Dice`` with
  ``axis=(1, 2, 3)``; its default ``axis=None`` pools the whole batch into one ratio instead, which
  for one-hot labels and softmax predictions (every image's denominator is 2 H W) equals the
  mean of the per-image values.
- ``tversky``: 1 - TP / (TP + alpha sum((1 - p) y) + beta sum(p (1 - y)) + eps) with TP = sum(y p),
  alpha = beta = 0.5 (then it equals soft Dice but for eps). Keras' ``keras.losses.Tversky`` with
  ``axis=(1, 2, 3)``: note that Keras weights the missed foreground ``(1 - p) y`` by alpha, the
  reverse of the usual "alpha weighs false positives".
- ``categorical_focal_crossentropy``: per pixel, -sum_c alpha (1 - q_c)^gamma y_c log(q_c) with q
  = clip(p / sum_c p, eps, 1 - eps), alpha = 0.25, gamma = 2 (Lin et al. 2017). Keras'
  ``keras.losses.CategoricalFocalCrossentropy`` computes the same map (its defaults).
- ``keras_categorical_crossentropy``: Keras' own ``keras.losses.CategoricalCrossentropy`` (the
  per-pixel map, before its reduction), a peer of segbench's ``categorical_crossentropy`` to see
  whether a hand-written loss beats the built-in. It differs from segbench's definition only in
  first dividing p by its row sum, which is 1 for a softmax.

Each has a numpy reference and its analytic gradient (together the float64 oracle, independent of
the TensorFlow code: a ``tf.stop_gradient`` slipped into the TensorFlow function fails ``segbench
check``) and a TensorFlow implementation written here; ``tests/losses/test_standard.py`` checks both
against Keras where the definitions coincide, and the gradients against finite differences.
The gradients, per image (soft Dice, Tversky) or per pixel (the cross-entropies), with
``[.]`` the clip's pass-through (1 where eps <= q <= 1 - eps, as ``tf.clip_by_value``):

- soft Dice, I = sum(y p), S = sum(y) + sum(p) + eps: dL/dp = -2 y / S + 2 I / S^2;
- Tversky, D = TP + alpha M + beta F + eps: dL/dp = -y / D + TP (y (1 - alpha) + beta (1 - y)) / D^2;
- focal, with s = sum_c p_c, q = p / s, G_c = dL/dq_c = alpha y_c [gamma (1 - q_c)^(gamma - 1)
  log q_c - (1 - q_c)^gamma / q_c] [.], through the normalisation dL/dp_j = (G_j - sum_c G_c q_c) / s;
- Keras' cross-entropy, the same with G_c = -y_c / q_c [.] (Keras 3's ``categorical_crossentropy``:
  divide by the row sum, clip to [eps, 1 - eps], ``-sum y log``).

Keras' own ``Dice``, ``Tversky`` and ``CategoricalFocalCrossentropy`` are their ``keras``
formulation, and Keras' ``CategoricalCrossentropy`` is all of ``keras_categorical_crossentropy``:
they run on every Keras backend (TensorFlow, JAX, PyTorch), held to the same numpy references.
"""

from __future__ import annotations

import functools

import numpy as np

from segbench._constants import EPSILON
from segbench.losses import clipping
from segbench.losses.registry import register_loss
from segbench.losses.tolerances import FLOAT64_ACCUMULATION

ALPHA_TVERSKY = BETA_TVERSKY = 0.5
ALPHA_FOCAL, GAMMA_FOCAL = 0.25, 2.0
_IMAGE_AXES = (1, 2, 3)


def soft_dice_numpy(y_true, y_pred):
    intersection = (y_true * y_pred).sum(axis=_IMAGE_AXES)
    return 1 - 2 * intersection / (y_true.sum(axis=_IMAGE_AXES) + y_pred.sum(axis=_IMAGE_AXES) + EPSILON)


def soft_dice_gradient(y_true, y_pred):
    intersection = (y_true * y_pred).sum(axis=_IMAGE_AXES)[:, None, None, None]
    union = (y_true.sum(axis=_IMAGE_AXES) + y_pred.sum(axis=_IMAGE_AXES) + EPSILON)[:, None, None, None]
    return -2 * y_true / union + 2 * intersection / union**2


def _image_sum(x):
    """Sum over each image's pixels and classes, accumulated in float64, returned in x's dtype.

    XLA on the CPU reduces a fusion into one running float32 sum: over the ~10^6 terms of an image
    at 512x512, C=4, soft Dice's sums came out 4.5e-4 off (its value) and its gradient 8.6e-5 off on
    every entry (docs/tolerances.md). The float64 accumulator costs one convert that XLA fuses into
    the reduction; TensorFlow eager and tf.function sum in a tree and would not need it."""
    import tensorflow as tf

    if x.dtype == tf.float64:
        return tf.reduce_sum(x, axis=_IMAGE_AXES)
    return tf.cast(tf.reduce_sum(tf.cast(x, tf.float64), axis=_IMAGE_AXES), x.dtype)


def soft_dice_tensorflow(y_true, y_pred):
    intersection = _image_sum(y_true * y_pred)
    union = _image_sum(y_true) + _image_sum(y_pred)
    return 1 - 2 * intersection / (union + EPSILON)


def tversky_numpy(y_true, y_pred):
    tp = (y_true * y_pred).sum(axis=_IMAGE_AXES)
    missed = ((1 - y_pred) * y_true).sum(axis=_IMAGE_AXES)
    spurious = (y_pred * (1 - y_true)).sum(axis=_IMAGE_AXES)
    return 1 - tp / (tp + ALPHA_TVERSKY * missed + BETA_TVERSKY * spurious + EPSILON)


def tversky_gradient(y_true, y_pred):
    tp = (y_true * y_pred).sum(axis=_IMAGE_AXES)
    missed = ((1 - y_pred) * y_true).sum(axis=_IMAGE_AXES)
    spurious = (y_pred * (1 - y_true)).sum(axis=_IMAGE_AXES)
    d = (tp + ALPHA_TVERSKY * missed + BETA_TVERSKY * spurious + EPSILON)[:, None, None, None]
    tp = tp[:, None, None, None]
    return -y_true / d + tp * (y_true * (1 - ALPHA_TVERSKY) + BETA_TVERSKY * (1 - y_true)) / d**2


def tversky_tensorflow(y_true, y_pred):
    tp = _image_sum(y_true * y_pred)
    missed = _image_sum((1 - y_pred) * y_true)
    spurious = _image_sum(y_pred * (1 - y_true))
    return 1 - tp / (tp + ALPHA_TVERSKY * missed + BETA_TVERSKY * spurious + EPSILON)


def focal_numpy(y_true, y_pred):
    q = clipping.clip(y_pred / y_pred.sum(axis=-1, keepdims=True))
    return -(ALPHA_FOCAL * (1 - q) ** GAMMA_FOCAL * y_true * np.log(q)).sum(axis=-1)


def _through_normalisation(y_pred, dl_dq):
    """dL/dp from dL/dq where q = clip(p / sum_c p): the clip passes where eps <= p / s <= 1 - eps
    (under the oracle's rule; see ClipRule)."""
    s = y_pred.sum(axis=-1, keepdims=True)
    q = y_pred / s
    passes = clipping.pass_through(q)
    g = np.where(passes > 0, passes * dl_dq(clipping.clip(q)), 0.0)
    return (g - (g * q).sum(axis=-1, keepdims=True)) / s


def focal_gradient(y_true, y_pred):
    def dl_dq(q):
        modulating = GAMMA_FOCAL * (1 - q) ** (GAMMA_FOCAL - 1) * np.log(q)
        return ALPHA_FOCAL * y_true * (modulating - (1 - q) ** GAMMA_FOCAL / q)

    return _through_normalisation(y_pred, dl_dq)


def keras_cce_numpy(y_true, y_pred):
    q = clipping.clip(y_pred / y_pred.sum(axis=-1, keepdims=True))
    return -(y_true * np.log(q)).sum(axis=-1)


def keras_cce_gradient(y_true, y_pred):
    return _through_normalisation(y_pred, lambda q: -y_true / q)


def focal_tensorflow(y_true, y_pred):
    import tensorflow as tf

    q = tf.clip_by_value(y_pred / tf.reduce_sum(y_pred, axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -tf.reduce_sum(ALPHA_FOCAL * (1 - q) ** GAMMA_FOCAL * y_true * tf.math.log(q), axis=-1)


@functools.cache
def _keras_loss(name: str, dtype: str):
    import keras

    # In the inputs' dtype: by default a Keras loss computes in its float32 policy, float64 inputs too.
    options = {"axis": _IMAGE_AXES} if name in ("Dice", "Tversky") else {}
    if name == "Tversky":
        options.update(alpha=ALPHA_TVERSKY, beta=BETA_TVERSKY)
    return getattr(keras.losses, name)(reduction=None, dtype=dtype, **options)


def _keras(name: str):
    """Keras' own loss ``name`` on whichever Keras backend this process runs (built on first use,
    so that registering imports no Keras)."""

    def loss(y_true, y_pred):
        import keras

        return _keras_loss(name, keras.backend.standardize_dtype(y_pred.dtype))(y_true, y_pred)

    loss.__name__ = f"keras_{name}"
    return loss


keras_categorical_crossentropy = _keras("CategoricalCrossentropy")


clipping.CLIP_RULE_LOSSES.update({"categorical_focal_crossentropy", "keras_categorical_crossentropy"})
FLOAT64_ACCUMULATION.update(
    {("soft_dice", "reference"), ("tversky", "reference")}
)  # their TensorFlow sums: see _image_sum
register_loss(
    "soft_dice",
    soft_dice_tensorflow,
    numpy=soft_dice_numpy,
    numpy_gradient=soft_dice_gradient,
    keras=_keras("Dice"),
    description="1 - 2 sum(y p) / (sum y + sum p + eps) per image (keras.losses.Dice, axis=(1, 2, 3))",
    origin="segbench.losses.standard",
)
register_loss(
    "tversky",
    tversky_tensorflow,
    numpy=tversky_numpy,
    numpy_gradient=tversky_gradient,
    keras=_keras("Tversky"),
    description="1 - TP / (TP + 0.5 missed + 0.5 spurious + eps) per image (keras.losses.Tversky)",
    origin="segbench.losses.standard",
)
register_loss(
    "categorical_focal_crossentropy",
    focal_tensorflow,
    numpy=focal_numpy,
    numpy_gradient=focal_gradient,
    keras=_keras("CategoricalFocalCrossentropy"),
    description="-sum_c 0.25 (1 - q_c)^2 y_c log q_c per pixel (keras.losses.CategoricalFocalCrossentropy)",
    origin="segbench.losses.standard",
)
register_loss(
    "keras_categorical_crossentropy",
    keras=keras_categorical_crossentropy,
    numpy=keras_cce_numpy,
    numpy_gradient=keras_cce_gradient,
    description="Keras' own CategoricalCrossentropy: the peer of segbench's categorical_crossentropy",
    origin="segbench.losses.standard",
)
