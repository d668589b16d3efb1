"""segbench: a reproducible benchmark of segmentation losses in numpy, TensorFlow, tf.function and XLA.

Importing segbench is cheap: it imports nothing until a name is used (PEP 562), so that the
command line starts, and stops on Ctrl-C, at once; TensorFlow is imported only by a TensorFlow mode.

The package's folders follow a cell's way through a run: ``losses`` (what is measured) ->
``measurement`` (sweep, timer, workers) -> ``results`` (schema, storage) -> ``verdicts``
(compare, ab, values, check) -> ``presentation`` (tables, report, progress) -> ``cli``.
"""

from __future__ import annotations

import _signal  # the C module: ``import signal`` builds its enums, milliseconds that Ctrl-C can land in
import sys as _sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C while the command line starts (imports): nothing was measured yet, so stop at once, quietly."""
    import os

    os.write(2, b"segbench: interrupted\n")
    os._exit(128 + signum)


# Only as the console script (not when a program or a test imports segbench), and as its very first
# statement, as cheap as it can be: from then on, Ctrl-C stops the command with one line, not a
# traceback of an import. segbench.cli.parser.main puts Python's handler back once every import is done.
if (
    _sys.argv
    and _sys.argv[0].rpartition("/")[2] == "segbench"
    and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler
):
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)

from typing import TYPE_CHECKING  # noqa: E402  (after the handler: imports are the start-up it covers)

from segbench._lazy import install_flat_names, package_dir, package_getattr  # noqa: E402

__version__ = "0.1.0"

_EXPORTS = {
    "EPSILON": "segbench._constants",
    "REDUCTIONS": "segbench._constants",
    "FORMULATIONS": "segbench.losses.registry",
    "LOSSES": "segbench.losses.registry",
    "MODES": "segbench.losses.registry",
    "LossFunction": "segbench.losses.registry",
    "loss_fn": "segbench.losses.registry",
    "register_loss": "segbench.losses.registry",
    "Scene": "segbench.losses.scenes",
    "make_scene": "segbench.losses.scenes",
    "validate_inputs": "segbench.losses.validation",
}

__all__ = [  # noqa: RUF022 (the same order as _EXPORTS)
    "EPSILON",
    "REDUCTIONS",
    "FORMULATIONS",
    "LOSSES",
    "MODES",
    "LossFunction",
    "loss_fn",
    "register_loss",
    "Scene",
    "make_scene",
    "validate_inputs",
]

if TYPE_CHECKING:
    from segbench._constants import EPSILON, REDUCTIONS
    from segbench.losses.registry import FORMULATIONS, LOSSES, MODES, LossFunction, loss_fn, register_loss
    from segbench.losses.scenes import Scene, make_scene
    from segbench.losses.validation import validate_inputs

install_flat_names()  # segbench.runner, segbench.losses_tf, ...: the module names before the folders
__getattr__ = package_getattr(__name__, _EXPORTS)
__dir__ = package_dir(__name__, _EXPORTS)
