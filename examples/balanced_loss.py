"""A user's own loss, benchmarked and checked by segbench without editing segbench.

A class-balanced cross-entropy: each pixel's term is weighted by the inverse of its class's share
of its image, so that small objects count as much as the background. Written twice, as a user
would: in numpy to debug with, in TensorFlow to train with.

    segbench values --plugin examples/balanced_loss.py
    segbench run --plugin examples/balanced_loss.py --loss balanced_crossentropy --profile quick
    segbench check --plugin examples/balanced_loss.py --loss balanced_crossentropy
"""

import numpy as np

import segbench

EPS = 1e-7


def balanced_numpy(y_true, y_pred):
    """Per-pixel map (N, H, W): -w[class] log p[class], w = 1 / (C * share of the class in the image)."""
    share = y_true.mean(axis=(1, 2), keepdims=True)  # (N, 1, 1, C)
    weight = 1.0 / (y_true.shape[-1] * np.maximum(share, EPS))
    return -(weight * y_true * np.log(np.clip(y_pred, EPS, 1 - EPS))).sum(axis=-1)


@segbench.register_loss("balanced_crossentropy", numpy=balanced_numpy, description="class-balanced cross-entropy")
def balanced_tensorflow(y_true, y_pred):
    import tensorflow as tf

    share = tf.reduce_mean(y_true, axis=(1, 2), keepdims=True)
    weight = 1.0 / (y_true.shape[-1] * tf.maximum(share, EPS))
    return -tf.reduce_sum(weight * y_true * tf.math.log(tf.clip_by_value(y_pred, EPS, 1 - EPS)), axis=-1)
