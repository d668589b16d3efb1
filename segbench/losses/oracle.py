"""Float64 oracle for every loss and its gradient, written for clarity rather than speed.

Every implementation in every mode is checked against these functions. A loss registered with
``segbench.register_loss`` is its own oracle: its numpy reference in float64 when it has one, else
its TensorFlow function run eagerly in float64 (and its gradient by tf.GradientTape in float64). Each loss is written as
"the probability each pixel is scored on" and "the weight of that pixel's term", from the
definitions, independent of the seed-faithful and fused implementations:

- categorical_crossentropy: score p[true class], weight 1;
- missing_annotation_crossentropy: score p[true class]; weight 0 where the pixel is labelled
  background and its argmax (lowest index on ties) is an object class absent from the image's
  annotation, else 1; the weight is a constant for the gradient;
- marginal_crossentropy: score p[true class], except that a background pixel is scored on the
  background probability plus the probabilities of the classes absent from its image (Shi et al.,
  MedIA 2021), weight 1.

The per-pixel loss is ``-weight * log(clip(score, EPSILON, 1 - EPSILON))``; the gradient passes
through the clip where ``EPSILON <= score <= 1 - EPSILON``, as ``tf.clip_by_value`` does.

Any shape: :func:`loss_value` and :func:`gradient_chunks` work on a few images at a time, so that
the float64 copies and temporaries stay within the size of the inputs themselves (``segbench run``
computes the oracle of every shape it times, batch 16 at 512x512 and C=32 included). Every loss
here, and every per-image or per-pixel user loss, is separable by image; a user loss that returns
one scalar for the batch is evaluated whole.

A user loss with a numpy reference and a ``numpy_gradient`` (the standard losses: analytic
gradients written from their definitions in :mod:`segbench.losses.standard`) has an oracle independent of
its TensorFlow code. Without them the oracle is the TensorFlow code itself in float64: it checks
the precision of the float32 modes, not the loss's logic (:func:`independent` says which).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from segbench._constants import EPSILON, REDUCTIONS
from segbench.losses.validation import as_numpy

TEMPORARIES = 6
"""float64 arrays of an input's size alive at once while a chunk is evaluated (two inputs, the
scored mask and products, the gradient): a chunk holds as many images as keep TEMPORARIES * 8
bytes per element within the inputs' own bytes (at least one image)."""

ORACLE_LOSSES = ("categorical_crossentropy", "missing_annotation_crossentropy", "marginal_crossentropy")


def _prepare(loss: str, y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(one-hot, probs, which channels each pixel's score sums, weight) in float64."""
    if loss not in ORACLE_LOSSES:
        raise ValueError(f"loss must be one of {', '.join(ORACLE_LOSSES)}, got {loss!r}")
    y = as_numpy(y_true).astype(np.float64)
    p = as_numpy(y_pred).astype(np.float64)
    n, h, w, c = y.shape
    label = y.argmax(axis=-1)  # (N, H, W): the annotated class of each pixel
    present = y.reshape(n, h * w, c).max(axis=1) > 0  # (N, C): class annotated somewhere in image
    absent_objects = ~present
    absent_objects[:, 0] = False
    # scored[n, h, w, k]: channel k's probability counts towards the pixel's score.
    scored = y.astype(bool)
    weight = np.ones((n, h, w))
    if loss == "missing_annotation_crossentropy":
        predicted = p.argmax(axis=-1)  # numpy takes the lowest index on ties
        predicted_absent = np.take_along_axis(absent_objects, predicted.reshape(n, -1), axis=1).reshape(n, h, w)
        weight[(label == 0) & predicted_absent] = 0.0
    elif loss == "marginal_crossentropy":
        background = label == 0
        scored = scored | (background[..., None] & absent_objects[:, None, None, :])
    return y, p, scored, weight


def _user(loss: str):
    """The registered user loss of that name, or None for segbench's own."""
    from segbench.losses.registry import LOSSES

    spec = LOSSES.get(loss)
    return spec.user if spec is not None else None


def _float64_backend(user, backend: str | None) -> str:
    """Where a registered loss's float64 oracle runs when it has no numpy reference: TensorFlow as
    before backends, or (``backend`` jax or torch, in that backend's worker, which has no TensorFlow)
    that backend itself, in float64: then it checks precision, not logic."""
    if backend in ("jax", "torch"):
        return backend
    return "tensorflow" if user.function("tensorflow") is not None else (backend or "tensorflow")


def _on(user, backend: str):
    """The registered loss's function on ``backend``: its native one, else its keras.ops one."""
    formulation = "reference" if user.function(backend, "reference") is not None else "keras"
    return lambda y_true, y_pred: user.call(backend, y_true, y_pred, formulation)


def user_value(
    user, y_true, y_pred, reduction: str = "mean", *, via: str | None = None, backend: str | None = None
) -> np.ndarray:
    """A registered loss in float64: its numpy reference if it has one (or ``via="numpy"``), else
    (or ``via="tensorflow"``) its TensorFlow function run eagerly in float64; in a JAX or PyTorch
    worker (``backend``) that backend's function in float64."""
    y = as_numpy(y_true).astype(np.float64)
    p = as_numpy(y_pred).astype(np.float64)
    via = via or ("numpy" if user.numpy is not None else _float64_backend(user, backend))
    if via == "numpy":
        with _naming(user, "numpy"):
            out = np.asarray(user.numpy(y, p))
        user.check_output(out, p.shape, "numpy")
    elif via in ("jax", "torch"):
        import importlib

        module = importlib.import_module(f"segbench.modes_{via}")
        out, _ = module.float64_value_and_gradient(_on(user, via), y, p, "sum")
        user.check_output(out, p.shape, via)
    else:
        import tensorflow as tf

        with _naming(user, "TensorFlow"):
            out = tf.convert_to_tensor(user.call_tensorflow(tf.constant(y), tf.constant(p)))
        user.check_output(out, p.shape, "TensorFlow")
        out = out.numpy()
    out = out.astype(np.float64)
    return _reduce(out, reduction) if reduction != "none" else out


class UserLossError(ValueError):
    """A registered loss's own code failed; the message names the loss and where it came from."""


@contextlib.contextmanager
def _naming(user, backend: str):
    """Re-raise an exception from a user's code with the loss and its plugin named."""
    try:
        yield
    except (UserLossError, KeyboardInterrupt):
        raise
    except Exception as error:
        first = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        raise UserLossError(
            f"loss {user.name!r} ({user.origin or 'registered'}): its {backend} code raised {first}"
        ) from error


def user_gradient(
    user, y_true, y_pred, reduction: str = "mean", *, via: str | None = None, backend: str | None = None
) -> np.ndarray:
    """The gradient of a registered loss, float64: its ``numpy_gradient`` when it has one (or
    ``via="numpy"``), else (or ``via="tensorflow"``) tf.GradientTape over its TensorFlow function;
    in a JAX or PyTorch worker (``backend``), jax.grad or torch.autograd over that backend's function."""
    via = via or ("numpy" if user.numpy_gradient is not None else _float64_backend(user, backend))
    if via == "numpy":
        y = as_numpy(y_true).astype(np.float64)
        p = as_numpy(y_pred).astype(np.float64)
        with _naming(user, "numpy_gradient"):
            grad = np.asarray(user.numpy_gradient(y, p), dtype=np.float64)
        if reduction == "mean":
            grad = grad / np.asarray(user.numpy(y, p)).size
        return grad
    if via in ("jax", "torch"):
        import importlib

        module = importlib.import_module(f"segbench.modes_{via}")
        y, p = as_numpy(y_true).astype(np.float64), as_numpy(y_pred).astype(np.float64)
        with _naming(user, via):
            return module.float64_value_and_gradient(_on(user, via), y, p, reduction)[1]
    import tensorflow as tf

    y = tf.constant(as_numpy(y_true).astype(np.float64))
    p = tf.constant(as_numpy(y_pred).astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(p)
        with _naming(user, "TensorFlow"):
            out = tf.convert_to_tensor(user.call_tensorflow(y, p))
        user.check_output(out, p.shape, "TensorFlow")
        target = tf.reduce_mean(out) if reduction == "mean" else tf.reduce_sum(out)
    # A value that does not depend on y_pred has no gradient path: its gradient is 0 everywhere.
    return tape.gradient(target, p, unconnected_gradients=tf.UnconnectedGradients.ZERO).numpy()


def per_pixel_loss(loss: str, y_true, y_pred) -> np.ndarray:
    """The loss of each pixel, shape (N, H, W), float64."""
    _, p, scored, weight = _prepare(loss, y_true, y_pred)
    score = (p * scored).sum(axis=-1)
    return -weight * np.log(np.clip(score, EPSILON, 1.0 - EPSILON))


def independent(loss: str) -> bool:
    """Whether the oracle of ``loss`` is independent of its TensorFlow code (value and gradient)."""
    user = _user(loss)
    return user is None or (user.numpy is not None and user.numpy_gradient is not None)


def dependence_note(loss: str) -> str:
    """One line for a loss whose oracle is its own code (not independent): what its checks can and
    cannot show, and where its oracle ran."""
    from segbench.losses.plugins import origin_of

    user = _user(loss)
    others = [b for b in ("jax", "torch") if user is not None and user.function(b) is not None]
    where = (
        "its own code in float64 on each backend (TensorFlow's, JAX's, PyTorch's)"
        if others
        else "its own TensorFlow code in float64"
    )
    also = ": compare the backends' rows with each other" if others else ""
    return (
        f"NOTE: {loss} ({origin_of(loss)}) has no numpy reference with a gradient: its oracle is {where}, "
        f"which checks precision, not logic{also}"
    )


def images_per_chunk(y_pred) -> int:
    """Images per chunk: their float64 temporaries within the size of the two inputs."""
    n = max(1, np.shape(y_pred)[0])
    per_image = TEMPORARIES * 8 * (np.size(y_pred) // n)
    inputs = 2 * np.size(y_pred) * np.dtype(getattr(y_pred, "dtype", np.float64)).itemsize
    return int(max(1, min(n, inputs // per_image)))


def chunks(y_pred, size: int | None = None) -> list[slice]:
    """Slices of the batch axis, ``size`` images each (default :func:`images_per_chunk`)."""
    n = np.shape(y_pred)[0]
    size = size or images_per_chunk(y_pred)
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _per_image_user(user, y_true, y_pred, backend: str | None = None) -> bool:
    """A user loss may be evaluated image by image when its output has the batch axis."""
    first = slice(0, 1)
    return np.ndim(user_value(user, y_true[first], y_pred[first], "none", backend=backend)) > 0


def loss_value(
    loss: str, y_true, y_pred, reduction: str = "mean", *, chunk: int | None = None, backend: str | None = None
) -> np.ndarray:
    """The loss reduced as asked: a float64 scalar for mean/sum, the (N, H, W) map for none;
    computed a chunk of images at a time (see the module docstring). ``backend``: where a registered
    loss without a numpy reference is run in float64 (see user_value)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    user = _user(loss)
    if user is not None and not _per_image_user(user, y_true, y_pred, backend):
        return user_value(user, y_true, y_pred, reduction, backend=backend)
    parts, count = [], 0
    for part in chunks(y_pred, chunk):
        if user is not None:
            out = np.asarray(user_value(user, y_true[part], y_pred[part], "none", backend=backend), dtype=np.float64)
        else:
            out = per_pixel_loss(loss, y_true[part], y_pred[part])
        count += out.size
        parts.append(out if reduction == "none" else np.float64(out.sum()))
    if reduction == "none":
        return np.concatenate(parts)
    total = np.float64(np.sum(parts))
    return total / count if reduction == "mean" else total


def gradient_chunks(
    loss: str, y_true, y_pred, reduction: str = "mean", *, chunk: int | None = None, backend: str | None = None
) -> Iterator[tuple[slice, np.ndarray]]:
    """(images, their gradient) a chunk at a time: the gradient of the whole batch's loss (a mean
    divides by the whole batch's count), float64, without the whole float64 gradient in memory."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    user = _user(loss)
    if user is not None and not _per_image_user(user, y_true, y_pred, backend):
        yield slice(0, np.shape(y_pred)[0]), user_gradient(user, y_true, y_pred, reduction, backend=backend)
        return
    n = np.shape(y_pred)[0]
    for part in chunks(y_pred, chunk):
        images = part.stop - part.start
        if user is not None:
            grad = user_gradient(user, y_true[part], y_pred[part], reduction, backend=backend)
        else:
            grad = _builtin_gradient(loss, y_true[part], y_pred[part], reduction)
        yield part, grad * (images / n) if reduction == "mean" else grad  # a chunk's mean is over its images


def gradient(loss: str, y_true, y_pred, reduction: str = "mean", *, backend: str | None = None) -> np.ndarray:
    """d(loss)/d(y_pred), float64, shape (N, H, W, C); for reduction none, of the map's sum."""
    out = np.empty(np.shape(y_pred), dtype=np.float64)
    for part, grad in gradient_chunks(loss, y_true, y_pred, reduction, backend=backend):
        out[part] = grad
    return out


def _builtin_gradient(loss: str, y_true, y_pred, reduction: str) -> np.ndarray:
    _, p, scored, weight = _prepare(loss, y_true, y_pred)
    score = (p * scored).sum(axis=-1)
    passes = (score >= EPSILON) & (score <= 1.0 - EPSILON)
    d_score = np.where(passes, -weight / np.clip(score, EPSILON, 1.0 - EPSILON), 0.0)
    grad = d_score[..., None] * scored
    if reduction == "mean":
        grad = grad / score.size
    elif reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    return grad


def _reduce(per_pixel: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "mean":
        return np.float64(per_pixel.mean())
    if reduction == "sum":
        return np.float64(per_pixel.sum())
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
