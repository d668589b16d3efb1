"""The one registry of losses, formulations and execution modes.

Adding a loss: an oracle branch in :mod:`segbench.oracle`, an entry in ``LOSSES``, and its
implementations in ``IMPLEMENTATIONS`` of :mod:`segbench.losses_numpy` and
:mod:`segbench.losses_tf`. Adding a mode: an entry in ``MODES``. TensorFlow is imported only when
a TensorFlow mode is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from segbench._constants import REDUCTIONS
from segbench.validation import validate_inputs


@dataclass(frozen=True)
class Loss:
    name: str
    description: str


@dataclass(frozen=True)
class Mode:
    """How a loss is executed: by which backend, and for TensorFlow whether traced and compiled."""

    name: str
    backend: str  # "numpy" or "tensorflow"
    description: str
    dtypes: tuple[str, ...]
    graph: bool = False  # wrap in tf.function
    jit_compile: bool = False  # tf.function(jit_compile=True): XLA

    @property
    def compiles(self) -> bool:
        """The first call traces (and for XLA compiles): timed separately as compile_s."""
        return self.graph


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("categorical_crossentropy", "pixel-wise categorical cross-entropy (the seed's standard loss)"),
        Loss(
            "missing_annotation_crossentropy",
            "background weight 0 where the argmax is an object absent from the image's annotation (the seed's)",
        ),
        Loss("marginal_crossentropy", "absent classes' probabilities merged into background (Shi et al. 2021)"),
    )
}

FORMULATIONS: dict[str, str] = {
    "reference": "seed-faithful: as the post writes it, vectorised",
    "fused": "fastest correct way found; assumes one-hot y_true (validation checks it)",
}

_TF_DTYPES = ("float16", "bfloat16", "float32", "float64")
MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("numpy", "numpy", "NumPy on the host", ("float16", "float32", "float64")),
        Mode("eager", "tensorflow", "TensorFlow eager, op by op", _TF_DTYPES),
        Mode("function", "tensorflow", "tf.function (graph, Grappler)", _TF_DTYPES, graph=True),
        Mode("xla", "tensorflow", "tf.function(jit_compile=True)", _TF_DTYPES, graph=True, jit_compile=True),
    )
}

_BACKEND_MODULES = {"numpy": "segbench.losses_numpy", "tensorflow": "segbench.losses_tf"}


def _lookup(table: dict[str, Any], kind: str, name: Any) -> Any:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; expected one of: {', '.join(table)}")
    return table[name]


def get_loss(name: str) -> Loss:
    return _lookup(LOSSES, "loss", name)


def get_mode(name: str) -> Mode:
    return _lookup(MODES, "mode", name)


def get_formulation(name: str) -> str:
    return _lookup(FORMULATIONS, "formulation", name)


def implementation(loss: str, formulation: str, backend: str) -> Any:
    """The backend's implementation of (loss, formulation); imports the backend's module."""
    module = importlib.import_module(_BACKEND_MODULES[backend])
    return module.IMPLEMENTATIONS[(loss, formulation)]


@dataclass(frozen=True)
class LossFunction:
    """A loss ready to call as ``(y_true, y_pred)``; built by :func:`loss_fn`."""

    loss: str
    mode: str
    formulation: str
    reduction: str
    gradient: bool
    validate: bool
    call: Any  # the backend callable (for TF graph modes it carries .tf_function)

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        if self.validate:
            validate_inputs(y_true, y_pred)
        return self.call(y_true, y_pred)

    @property
    def tf_function(self) -> Any:
        """The tf.function behind a graph mode (for tracing counts and compiler IR), else None."""
        return getattr(self.call, "tf_function", None)


def loss_fn(
    loss: str,
    mode: str,
    *,
    formulation: str = "reference",
    reduction: str = "mean",
    gradient: bool = False,
    validate: bool = True,
) -> LossFunction:
    """Build ``loss`` for execution ``mode``.

    The callable takes numpy arrays or tensors ``(y_true, y_pred)`` of shape (N, H, W, C) and returns
    the loss (a scalar, or the (N, H, W) map with ``reduction="none"``); with ``gradient=True`` it
    returns ``(loss, d loss / d y_pred)``. ``validate=False`` skips input checks, as timed code should.
    """
    for name, value in (("loss", loss), ("mode", mode), ("formulation", formulation), ("reduction", reduction)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    for name, value in (("gradient", gradient), ("validate", validate)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    get_loss(loss)
    get_formulation(formulation)
    spec = get_mode(mode)
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of: {', '.join(REDUCTIONS)}")
    impl = implementation(loss, formulation, spec.backend)
    if spec.backend == "numpy":
        value, value_and_grad = impl
        call = _numpy_call(value_and_grad if gradient else value, reduction)
    else:
        from segbench import modes_tf

        call = modes_tf.build(impl, spec, reduction=reduction, gradient=gradient)
    return LossFunction(loss, mode, formulation, reduction, bool(gradient), bool(validate), call)


def _numpy_call(fn: Any, reduction: str) -> Any:
    from segbench._constants import compute_dtype
    from segbench.validation import as_numpy

    def call(y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = as_numpy(y_true), as_numpy(y_pred)
        target = compute_dtype(y_pred.dtype.name)
        if target != y_pred.dtype.name:  # half precision: computed in float32
            y_true, y_pred = y_true.astype(target), y_pred.astype(target)
        return fn(y_true, y_pred, reduction)

    return call
