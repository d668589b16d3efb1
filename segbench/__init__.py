"""segbench: a reproducible benchmark of segmentation losses in numpy, TensorFlow, tf.function and XLA.

Importing segbench does not import TensorFlow; building a TensorFlow mode does.
"""

from segbench._constants import EPSILON, REDUCTIONS
from segbench.registry import FORMULATIONS, LOSSES, MODES, LossFunction, loss_fn, register_loss
from segbench.scenes import Scene, make_scene
from segbench.validation import validate_inputs

__version__ = "0.1.0"

__all__ = [
    "EPSILON",
    "FORMULATIONS",
    "LOSSES",
    "MODES",
    "REDUCTIONS",
    "LossFunction",
    "Scene",
    "loss_fn",
    "make_scene",
    "register_loss",
    "validate_inputs",
]
