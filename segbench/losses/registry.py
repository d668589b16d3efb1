"""The one registry of losses, formulations and execution modes.

Adding a loss: an oracle branch in :mod:`segbench.losses.oracle`, an entry in ``LOSSES``, and its
implementations in ``IMPLEMENTATIONS`` of :mod:`segbench.losses.numpy_impl`, :mod:`segbench.losses.tf_impl`
and :mod:`segbench.losses.keras_impl`. Adding a mode: an entry in ``MODES``, whose ``backend`` says which
library runs it (numpy, tensorflow, jax, torch). A backend's library is imported only when one of
its modes is built; ``segbench run`` runs each backend in a worker process of its own, with
``KERAS_BACKEND`` set to it before Keras is imported there.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from segbench._constants import REDUCTIONS
from segbench.losses.validation import validate_inputs


@dataclass(frozen=True)
class Loss:
    name: str
    description: str
    formulations: tuple[str, ...] = ("reference", "fused", "blocked", "keras")
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
    keras: Any = None  # the same written with keras.ops (or a keras Loss): runs on every Keras backend
    jax: Any = None  # a native JAX function (jax.numpy), for the jax modes
    torch: Any = None  # a native PyTorch function, for the torch modes

    def native(self, backend: str) -> Any:
        """The user's own function for ``backend`` (not the keras.ops one), or None."""
        return {"tensorflow": self.tensorflow, "jax": self.jax, "torch": self.torch, "numpy": self.numpy}.get(backend)

    @property
    def formulations(self) -> tuple[str, ...]:
        """``reference``: the native functions (and the keras.ops one where no native one is given);
        ``keras`` as well when both a native and a keras.ops function are given (peers)."""
        natives = any(f is not None for f in (self.tensorflow, self.jax, self.torch))
        return ("reference", "keras") if self.keras is not None and natives else ("reference",)

    def function(self, backend: str, formulation: str = "reference") -> Any:
        """The function that runs ``formulation`` on ``backend`` (None: it does not run there)."""
        if backend == "numpy":
            return self.numpy if formulation == "reference" else None
        keras_fn = self.keras if backend in KERAS_BACKENDS else None
        if formulation == "keras":
            return keras_fn
        # reference falls back on the keras.ops function only when that is not a formulation of its own
        return self.native(backend) or (keras_fn if self.formulations == ("reference",) else None)

    def call(self, backend: str, y_true: Any, y_pred: Any, formulation: str = "reference") -> Any:
        """The user's output on ``backend``, unreduced (a keras Loss: its ``call``, before reduction)."""
        fn = self.function(backend, formulation)
        uses_keras = fn is self.keras
        if _is_keras_loss(fn):
            fn = fn.call
        try:
            return fn(y_true, y_pred)
        except Exception as error:  # an op the backend lacks: say which backend, keep the op's message
            how = "keras.ops function" if uses_keras else "function"
            message = f"loss {self.name!r}: its {how} failed on the {BACKEND_LABELS[backend]} backend: "
            message += f"{type(error).__name__}: {error}"
            try:
                raised = type(error)(message)
            except Exception:
                raised = RuntimeError(message)
            raise raised from error

    def call_tensorflow(self, y_true: Any, y_pred: Any) -> Any:
        """The user's TensorFlow output, unreduced (a keras Loss: its ``call``, before reduction)."""
        return self.call("tensorflow", y_true, y_pred)

    def check_output(self, out: Any, y_pred_shape: tuple, backend: str) -> None:
        """The output must be a float map (N, H, W), per-image values (N,) or a scalar."""
        shape, dtype = tuple(out.shape), getattr(out.dtype, "name", str(out.dtype).replace("torch.", ""))
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

    def tensorflow_implementation(self, formulation: str = "reference") -> Any:
        return self.backend_implementation("tensorflow", formulation)

    def backend_implementation(self, backend: str, formulation: str = "reference") -> Any:
        """``(y_true, y_pred, reduction)`` on ``backend`` (tensorflow, jax, torch): the user's
        function, its output checked (shape, dtype: an error naming the backend), then reduced."""
        label = BACKEND_LABELS[backend]

        def implementation(y_true: Any, y_pred: Any, reduction: str = "mean") -> Any:
            out = _as_tensor(backend, self.call(backend, y_true, y_pred, formulation))
            self.check_output(out, tuple(y_pred.shape), label)
            if reduction == "mean":
                return out.mean() if backend != "tensorflow" else _tf_reduce(out, "mean")
            if reduction == "sum":
                return out.sum() if backend != "tensorflow" else _tf_reduce(out, "sum")
            return out

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


def _as_tensor(backend: str, out: Any) -> Any:
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(out)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(out)
    import torch

    return out if isinstance(out, torch.Tensor) else torch.as_tensor(out)


def _tf_reduce(out: Any, reduction: str) -> Any:
    import tensorflow as tf

    return tf.reduce_mean(out) if reduction == "mean" else tf.reduce_sum(out)


@dataclass(frozen=True)
class Mode:
    """How a loss is executed: by which backend, and whether traced and compiled.

    For a Keras 3 loss the modes are Keras' own switch per backend: ``jit_compile=False`` is
    eager/jax/torch, ``jit_compile=True`` is xla/jax-jit/torch-compile (what Keras itself wraps a
    step in on that backend: ``tf.function(jit_compile=True)``, ``jax.jit``, ``torch.compile``).
    """

    name: str
    backend: str  # numpy, tensorflow, jax or torch (see BACKENDS)
    description: str
    dtypes: tuple[str, ...]
    graph: bool = False  # wrap in tf.function
    jit_compile: bool = False  # tf.function(jit_compile=True): XLA; jax.jit; torch.compile

    @property
    def compiles(self) -> bool:
        """The first call traces (and for XLA, jax.jit, torch.compile compiles): timed as compile_s."""
        return self.graph or self.jit_compile


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
    "keras": "the reference written once with keras.ops (Keras 3): the same code on TensorFlow, JAX and PyTorch",
}
# Formulations that only make sense in some modes (others skip them): blocked is hundreds of small
# ops, which eager and numpy would run one by one.
FORMULATION_MODES: dict[str, tuple[str, ...]] = {"blocked": ("function", "xla")}

# The backends a library runs a mode on, the Python module each needs, and the names shown.
BACKENDS: dict[str, str] = {"numpy": "numpy", "tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
BACKEND_LABELS: dict[str, str] = {"numpy": "NumPy", "tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
KERAS_BACKENDS = ("tensorflow", "jax", "torch")  # where a keras.ops loss runs (KERAS_BACKEND)
# Which backends implement segbench's own losses in each formulation (the keras formulation runs
# on every Keras backend; reference, fused and blocked are numpy and TensorFlow code).
FORMULATION_BACKENDS: dict[str, tuple[str, ...]] = {
    "reference": ("numpy", "tensorflow"),
    "fused": ("numpy", "tensorflow"),
    "blocked": ("tensorflow",),
    "keras": KERAS_BACKENDS,
}


def runs_in(formulation: str, mode: str) -> bool:
    """Whether segbench's ``formulation`` is meant to run in ``mode`` (FORMULATION_MODES, FORMULATION_BACKENDS)."""
    backend = MODES[mode].backend if mode in MODES else None
    return mode in FORMULATION_MODES.get(formulation, (mode,)) and backend in FORMULATION_BACKENDS.get(
        formulation, (backend,)
    )


_TF_DTYPES = ("float16", "bfloat16", "float32", "float64")
MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("numpy", "numpy", "NumPy on the host", ("float16", "float32", "float64")),
        Mode("eager", "tensorflow", "TensorFlow eager, op by op", _TF_DTYPES),
        Mode("function", "tensorflow", "tf.function (graph, Grappler)", _TF_DTYPES, graph=True),
        Mode("xla", "tensorflow", "tf.function(jit_compile=True)", _TF_DTYPES, graph=True, jit_compile=True),
        Mode("jax", "jax", "JAX eager, op by op (Keras jit_compile=False)", _TF_DTYPES),
        Mode("jax-jit", "jax", "jax.jit: XLA (Keras jit_compile=True)", _TF_DTYPES, jit_compile=True),
        Mode("torch", "torch", "PyTorch eager (Keras jit_compile=False)", _TF_DTYPES),
        Mode(
            "torch-compile", "torch", "torch.compile: Inductor (Keras jit_compile=True)", _TF_DTYPES, jit_compile=True
        ),
    )
}
TENSORFLOW_MODES = tuple(name for name, mode in MODES.items() if mode.backend in ("numpy", "tensorflow"))
"""The modes of segbench before backends (numpy and TensorFlow): the default sweeps' modes."""

_BACKEND_MODULES = {
    "numpy": "segbench.losses.numpy_impl",
    "tensorflow": "segbench.losses.tf_impl",
    "jax": "segbench.losses.keras_impl",
    "torch": "segbench.losses.keras_impl",
}


def modes_of(backend: str) -> tuple[str, ...]:
    return tuple(name for name, mode in MODES.items() if mode.backend == backend)


def modes_by_backend(modes: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``modes`` grouped by their backend, backends in BACKENDS order: the commands that evaluate
    losses in-process (values, check) run each group in a process of its own backend."""
    modes = list(modes)
    return {
        backend: tuple(m for m in modes if MODES[m].backend == backend)
        for backend in BACKENDS
        if any(MODES[m].backend == backend for m in modes)
    }


def installed_modes_by_backend(modes: Iterable[str]) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """modes_by_backend for the backends installed here, and one line per backend that is not
    (naming the modes it leaves out)."""
    found = installed_backends()
    groups = modes_by_backend(modes)
    missing = [
        f"{BACKEND_LABELS[b]} is not installed: mode{'s' if len(ms) > 1 else ''} {', '.join(ms)} left out"
        for b, ms in groups.items()
        if not found[b]
    ]
    return {b: ms for b, ms in groups.items() if found[b]}, missing


def get_backend(name: str) -> str:
    """A backend by name (an error names the choices)."""
    _lookup(BACKENDS, "backend", name)
    return name


def installed_backends() -> dict[str, bool]:
    """Which backends' libraries are installed here (found, not imported: cheap, imports nothing)."""
    import importlib.util

    found = {}
    for backend, module in BACKENDS.items():
        try:
            found[backend] = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found[backend] = False
    return found


def process_keras_backend() -> str:
    """The Keras backend of this process: Keras' own answer once imported, else KERAS_BACKEND
    (then keras.json, then tensorflow, as Keras decides) without importing Keras."""
    import os
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    import json
    from pathlib import Path

    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def require_keras_backend(backend: str, what: str) -> None:
    """A keras.ops loss runs on the backend Keras was started with in this process: any other is an
    error saying how to get it (segbench run gives each backend a worker with KERAS_BACKEND set)."""
    current = process_keras_backend()
    if current != backend:
        raise RuntimeError(
            f"{what} needs Keras on the {BACKEND_LABELS[backend]} backend, but this process's Keras backend is "
            f"{current}: set KERAS_BACKEND={backend} before Keras is imported (segbench run does that in the "
            f"worker process of each backend)"
        )


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register_loss(
    name: str,
    tensorflow: Any = None,
    *,
    numpy: Any = None,
    numpy_gradient: Any = None,
    keras: Any = None,
    jax: Any = None,
    torch: Any = None,
    description: str = "",
    origin: str = "",
) -> Any:
    """Register a loss so that it works everywhere a built-in does (every mode, run, values, check,
    compare, report, asv, pytest-benchmark).

    ``tensorflow`` is ``(y_true, y_pred) -> tensor`` in the Keras convention: a per-pixel map
    (N, H, W), per-image values (N,) or a scalar (segbench reduces it: ``mean`` and ``sum`` of it,
    ``none`` returns it as it is), or a ``keras.losses.Loss`` instance (its unreduced ``call``),
    which, like ``keras``, runs on every Keras backend.
    ``keras`` is the same written with ``keras.ops`` (or a ``keras.losses.Loss``): with no more code
    it runs on TensorFlow, JAX and PyTorch (modes eager/function/xla, jax/jax-jit, torch/torch-compile).
    ``jax`` and ``torch`` are native functions for those backends (jax.numpy, torch ops), used there
    instead of ``keras``; with both a native function and ``keras`` the loss has a second formulation,
    ``keras``, so that the two are measured side by side.
    ``numpy`` is an optional reference with the same convention (then the loss also runs in the
    numpy mode, and is the float64 oracle); ``numpy_gradient`` optionally gives the gradient of the
    sum of ``numpy``'s output with respect to ``y_pred``. Without any function it is a decorator:
    ``@register_loss("my_loss")`` over the TensorFlow function. Returns what it registered.
    """
    if tensorflow is None and keras is None and jax is None and torch is None:
        return lambda fn: register_loss(
            name, fn, numpy=numpy, numpy_gradient=numpy_gradient, description=description, origin=origin
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"register_loss: name must be an identifier (letters, digits, _), got {name!r}")
    if name in LOSSES:
        owner = LOSSES[name].user.origin if LOSSES[name].user else "segbench (built in)"
        raise ValueError(f"register_loss: loss {name!r} is already registered by {owner or 'another plugin'}")
    for label, fn in (("tensorflow", tensorflow), ("keras", keras)):
        if fn is not None and not (callable(fn) or _is_keras_loss(fn)):
            raise TypeError(f"register_loss: {label} for {name!r} must be a function or a keras Loss")
    for label, fn in (("numpy", numpy), ("numpy_gradient", numpy_gradient), ("jax", jax), ("torch", torch)):
        if fn is not None and not callable(fn):
            raise TypeError(f"register_loss: {label} for {name!r} must be a function")
    if numpy_gradient is not None and numpy is None:
        raise ValueError(f"register_loss: {name!r} has a numpy_gradient but no numpy function")
    if _is_keras_loss(tensorflow) and keras is None:  # a keras Loss is backend-agnostic
        tensorflow, keras = None, tensorflow
    user = UserLoss(name, tensorflow, numpy, numpy_gradient, origin, keras=keras, jax=jax, torch=torch)
    LOSSES[name] = Loss(name, description or f"registered by {origin or 'the user'}", user.formulations, user)
    return next(fn for fn in (tensorflow, keras, jax, torch) if fn is not None)


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
    backend = MODES[mode].backend
    if spec.user is None and not runs_in(formulation, mode):
        if mode not in FORMULATION_MODES.get(formulation, (mode,)):
            return f"formulation {formulation} runs only in modes {', '.join(FORMULATION_MODES[formulation])}"
        return f"formulation {formulation} has no {BACKEND_LABELS[backend]} implementation (mode {mode})"
    if spec.user is not None and backend == "numpy":
        if spec.user.numpy is None:
            return f"loss {loss} has no numpy implementation (register it with numpy=)"
        if gradient and spec.user.numpy_gradient is None:
            return f"loss {loss} has no numpy gradient (register it with numpy_gradient=)"
    if spec.user is not None and spec.user.function(backend, formulation) is None:
        return (
            f"loss {loss} has no {BACKEND_LABELS[backend]} implementation in formulation {formulation} "
            f"(register it with keras= or {backend}=)"
        )
    return None


def not_here(loss: str, formulation: str, mode: str) -> str | None:
    """Why this process cannot run the cell (its backend is not installed, or it runs keras.ops code
    and Keras here runs another backend), or None. In-process commands (check, values, pytest)
    skip such cells; segbench run sends them to their backend's worker instead."""
    backend = MODES[mode].backend
    if not installed_backends()[backend]:
        return f"{BACKEND_LABELS[backend]} is not installed"
    if uses_keras(loss, formulation, backend) and process_keras_backend() != backend:
        return f"Keras runs on {process_keras_backend()} in this process (KERAS_BACKEND={backend} runs it)"
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
        return user.numpy_implementation() if backend == "numpy" else user.backend_implementation(backend, formulation)
    module = importlib.import_module(
        "segbench.losses.keras_impl" if formulation == "keras" else _BACKEND_MODULES[backend]
    )
    return module.IMPLEMENTATIONS[(loss, formulation)]


def uses_keras(loss: str, formulation: str, backend: str) -> bool:
    """Whether (loss, formulation) on ``backend`` runs keras.ops code (then Keras' backend must be it)."""
    if backend not in KERAS_BACKENDS:
        return False
    user = get_loss(loss).user
    if user is None:
        return formulation == "keras"
    fn = user.function(backend, formulation)
    return fn is not None and (fn is user.keras or _is_keras_loss(fn))


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
    if uses_keras(loss, formulation, spec.backend):
        require_keras_backend(spec.backend, f"loss {loss} ({formulation}) in mode {mode}")
    impl = implementation(loss, formulation, spec.backend)
    if spec.backend == "numpy":
        value, value_and_grad = impl
        call = _numpy_call(value_and_grad if gradient else value, reduction)
    else:
        module = importlib.import_module(f"segbench.modes_{'tf' if spec.backend == 'tensorflow' else spec.backend}")
        call = module.build(impl, spec, reduction=reduction, gradient=gradient)
    return LossFunction(loss, mode, formulation, reduction, bool(gradient), bool(validate), call)


def _numpy_call(fn: Any, reduction: str) -> Any:
    from segbench._constants import compute_dtype
    from segbench.losses.validation import as_numpy

    def call(y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = as_numpy(y_true), as_numpy(y_pred)
        target = compute_dtype(y_pred.dtype.name)
        if target != y_pred.dtype.name:  # half precision: computed in float32
            y_true, y_pred = y_true.astype(target), y_pred.astype(target)
        return fn(y_true, y_pred, reduction)

    return call
