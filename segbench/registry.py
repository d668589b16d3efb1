"""The one registry of losses, formulations and execution modes.

Adding a loss: an oracle branch in :mod:`segbench.oracle`, an entry in ``LOSSES``, and its
implementations in ``IMPLEMENTATIONS`` of :mod:`segbench.losses_numpy` and
:mod:`segbench.losses_tf`. Adding a mode: an entry in ``MODES``. TensorFlow is imported only when
a TensorFlow mode is built.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from segbench._constants import REDUCTIONS
from segbench.validation import validate_inputs


@dataclass(frozen=True)
class Loss:
    name: str
    description: str
    formulations: tuple[str, ...] = ("reference", "fused", "blocked")
    user: UserLoss | None = None  # a loss registered with register_loss (its functions)

    @property
    def builtin(self) -> bool:
        return self.user is None


@dataclass(frozen=True)
class UserLoss:
    """A loss registered through :func:`register_loss`: the user's functions, adapted."""

    name: str
    tensorflow: Any  # (y_true, y_pred) -> map (N, H, W), per image (N,) or scalar; or a keras Loss
    numpy: Any = None  # the same in numpy, optional
    numpy_gradient: Any = None  # (y_true, y_pred) -> d sum(numpy(...)) / d y_pred, optional
    origin: str = ""  # where it was registered (a plugin file or module)

    def call_tensorflow(self, y_true: Any, y_pred: Any) -> Any:
        """The user's TensorFlow output, unreduced (a keras Loss: its ``call``, before reduction)."""
        fn = getattr(self.tensorflow, "call", None) if _is_keras_loss(self.tensorflow) else self.tensorflow
        return fn(y_true, y_pred)

    def check_output(self, out: Any, y_pred_shape: tuple, backend: str) -> None:
        """The output must be a float map (N, H, W), per-image values (N,) or a scalar."""
        shape, dtype = tuple(out.shape), getattr(out.dtype, "name", str(out.dtype))
        n, h, w = y_pred_shape[:3]
        expected = {0: (), 1: (n,), 3: (n, h, w)}
        if len(shape) not in expected or any(
            a is not None and b is not None and a != b for a, b in zip(shape, expected[len(shape)], strict=True)
        ):
            raise ValueError(
                f"loss {self.name!r} ({self.origin or 'registered'}): its {backend} function returned shape "
                f"{shape}; expected a per-pixel map ({n}, {h}, {w}), per-image values ({n},) or a scalar"
            )
        if "float" not in dtype:
            raise TypeError(
                f"loss {self.name!r} ({self.origin or 'registered'}): its {backend} function returned dtype "
                f"{dtype}; expected a floating-point result"
            )

    def tensorflow_implementation(self) -> Any:
        def implementation(y_true: Any, y_pred: Any, reduction: str = "mean") -> Any:
            import tensorflow as tf

            out = tf.convert_to_tensor(self.call_tensorflow(y_true, y_pred))
            self.check_output(out, tuple(y_pred.shape), "TensorFlow")
            if reduction == "mean":
                return tf.reduce_mean(out)
            return tf.reduce_sum(out) if reduction == "sum" else out

        return implementation

    def numpy_implementation(self) -> tuple[Any, Any]:
        import numpy as np

        def value(y_true: Any, y_pred: Any, reduction: str = "mean") -> Any:
            out = np.asarray(self.numpy(y_true, y_pred))
            self.check_output(out, y_pred.shape, "numpy")
            if reduction == "mean":
                return out.mean(dtype=out.dtype)
            return out.sum(dtype=out.dtype) if reduction == "sum" else out

        def value_and_grad(y_true: Any, y_pred: Any, reduction: str = "mean") -> Any:
            out = np.asarray(self.numpy(y_true, y_pred))
            grad = np.asarray(self.numpy_gradient(y_true, y_pred), dtype=y_pred.dtype)
            if grad.shape != y_pred.shape:
                raise ValueError(
                    f"loss {self.name!r}: its numpy_gradient returned shape {grad.shape}; expected {y_pred.shape}"
                )
            scale = 1.0 / out.size if reduction == "mean" else 1.0
            return value(y_true, y_pred, reduction), grad * y_pred.dtype.type(scale)

        return value, (value_and_grad if self.numpy_gradient is not None else None)


def _is_keras_loss(obj: Any) -> bool:
    return any(cls.__name__ == "Loss" and cls.__module__.startswith("keras") for cls in type(obj).__mro__)


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
    "fused": "fastest correct way op by op; assumes one-hot y_true (validation checks it)",
    "blocked": "for XLA on the CPU: inputs read once in k blocks of channel slices (presence: y_true once"
    " more), gradient written by hand; one-hot y_true; graph modes only",
}
# Formulations that only make sense in some modes (others skip them): blocked is hundreds of small
# ops, which eager and numpy would run one by one.
FORMULATION_MODES: dict[str, tuple[str, ...]] = {"blocked": ("function", "xla")}


def runs_in(formulation: str, mode: str) -> bool:
    """Whether ``formulation`` is meant to run in ``mode`` (see FORMULATION_MODES)."""
    return mode in FORMULATION_MODES.get(formulation, (mode,))


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


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register_loss(
    name: str,
    tensorflow: Any = None,
    *,
    numpy: Any = None,
    numpy_gradient: Any = None,
    description: str = "",
    origin: str = "",
) -> Any:
    """Register a loss so that it works everywhere a built-in does (every mode, run, values, check,
    compare, report, asv, pytest-benchmark).

    ``tensorflow`` is ``(y_true, y_pred) -> tensor`` in the Keras convention: a per-pixel map
    (N, H, W), per-image values (N,) or a scalar (segbench reduces it: ``mean`` and ``sum`` of it,
    ``none`` returns it as it is), or a ``keras.losses.Loss`` instance (its unreduced ``call``).
    ``numpy`` is an optional reference with the same convention (then the loss also runs in the
    numpy mode, and is the float64 oracle); ``numpy_gradient`` optionally gives the gradient of the
    sum of ``numpy``'s output with respect to ``y_pred``. Without ``tensorflow`` it is a decorator:
    ``@register_loss("my_loss")`` over the TensorFlow function. Returns what it registered.
    """
    if tensorflow is None:
        return lambda fn: register_loss(
            name, fn, numpy=numpy, numpy_gradient=numpy_gradient, description=description, origin=origin
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"register_loss: name must be an identifier (letters, digits, _), got {name!r}")
    if name in LOSSES:
        owner = LOSSES[name].user.origin if LOSSES[name].user else "segbench (built in)"
        raise ValueError(f"register_loss: loss {name!r} is already registered by {owner or 'another plugin'}")
    if not (callable(tensorflow) or _is_keras_loss(tensorflow)):
        raise TypeError(f"register_loss: tensorflow for {name!r} must be a function or a keras Loss")
    for label, fn in (("numpy", numpy), ("numpy_gradient", numpy_gradient)):
        if fn is not None and not callable(fn):
            raise TypeError(f"register_loss: {label} for {name!r} must be a function")
    if numpy_gradient is not None and numpy is None:
        raise ValueError(f"register_loss: {name!r} has a numpy_gradient but no numpy function")
    user = UserLoss(name, tensorflow, numpy, numpy_gradient, origin)
    LOSSES[name] = Loss(name, description or f"registered by {origin or 'the user'}", ("reference",), user)
    return tensorflow


def unregister_loss(name: str) -> None:
    """Remove a loss registered with register_loss (built-in losses stay)."""
    if name in LOSSES and LOSSES[name].user is not None:
        del LOSSES[name]


def builtin_losses() -> tuple[str, ...]:
    """The losses segbench itself defines (with stored reference values and two formulations)."""
    return tuple(name for name, loss in LOSSES.items() if loss.builtin)


def unsupported(loss: str, formulation: str, mode: str, gradient: bool) -> str | None:
    """Why this loss cannot run as asked (then a sweep skips the cell), or None."""
    spec = get_loss(loss)
    if formulation not in spec.formulations:
        return f"loss {loss} has no {formulation} formulation (it has: {', '.join(spec.formulations)})"
    if not runs_in(formulation, mode):
        return f"formulation {formulation} runs only in modes {', '.join(FORMULATION_MODES[formulation])}"
    if spec.user is not None and MODES[mode].backend == "numpy":
        if spec.user.numpy is None:
            return f"loss {loss} has no numpy implementation (register it with numpy=)"
        if gradient and spec.user.numpy_gradient is None:
            return f"loss {loss} has no numpy gradient (register it with numpy_gradient=)"
    return None


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
    user = get_loss(loss).user
    if user is not None:
        return user.numpy_implementation() if backend == "numpy" else user.tensorflow_implementation()
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
    reason = unsupported(loss, formulation, mode, gradient)
    if reason:
        raise ValueError(reason)
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
