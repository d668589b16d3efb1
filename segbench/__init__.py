"""segbench: a reproducible benchmark of segmentation losses in numpy, TensorFlow, tf.function and XLA.

Importing segbench is cheap: it imports nothing until a name is used (PEP 562), so that the
command line starts, and stops on Ctrl-C, at once; TensorFlow is imported only by a TensorFlow mode.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "EPSILON": "segbench._constants",
    "REDUCTIONS": "segbench._constants",
    "FORMULATIONS": "segbench.registry",
    "LOSSES": "segbench.registry",
    "MODES": "segbench.registry",
    "LossFunction": "segbench.registry",
    "loss_fn": "segbench.registry",
    "register_loss": "segbench.registry",
    "Scene": "segbench.scenes",
    "make_scene": "segbench.scenes",
    "validate_inputs": "segbench.validation",
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
    from segbench.registry import FORMULATIONS, LOSSES, MODES, LossFunction, loss_fn, register_loss
    from segbench.scenes import Scene, make_scene
    from segbench.validation import validate_inputs


def __getattr__(name: str) -> Any:
    """The public names and the submodules, imported on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
