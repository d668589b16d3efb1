"""A label-smoothed cross-entropy written once in keras.ops: segbench runs it on TensorFlow, JAX
and PyTorch (segbench run --plugin examples/smoothed_loss_keras.py --profile backends)."""

from keras import ops

import segbench


def smoothed_crossentropy(y_true, y_pred):  # (N, H, W) per pixel, in keras.ops: every backend
    target = 0.9 * y_true + 0.1 / ops.shape(y_true)[-1]
    return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)


segbench.register_loss("smoothed_crossentropy_keras", keras=smoothed_crossentropy)
