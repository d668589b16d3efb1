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
"""

from __future__ import annotations

import numpy as np

from segbench._constants import EPSILON, REDUCTIONS
from segbench.validation import as_numpy

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
    from segbench.registry import LOSSES

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
        out = np.asarray(user.numpy(y, p), dtype=np.float64)
        user.check_output(out, p.shape, "numpy")
    elif via in ("jax", "torch"):
        import importlib

        module = importlib.import_module(f"segbench.modes_{via}")
        out, _ = module.float64_value_and_gradient(_on(user, via), y, p, "sum")
        user.check_output(out, p.shape, via)
    else:
        import tensorflow as tf

        out = tf.convert_to_tensor(user.call_tensorflow(tf.constant(y), tf.constant(p))).numpy().astype(np.float64)
        user.check_output(out, p.shape, "TensorFlow")
    return _reduce(out, reduction) if reduction != "none" else out


def user_gradient(user, y_true, y_pred, reduction: str = "mean", *, backend: str | None = None) -> np.ndarray:
    """The gradient of a registered loss, float64, by tf.GradientTape over its TensorFlow function
    (``backend`` jax or torch: by jax.grad or torch.autograd over that backend's function)."""
    via = _float64_backend(user, backend)
    if via in ("jax", "torch"):
        import importlib

        module = importlib.import_module(f"segbench.modes_{via}")
        y, p = as_numpy(y_true).astype(np.float64), as_numpy(y_pred).astype(np.float64)
        return module.float64_value_and_gradient(_on(user, via), y, p, reduction)[1]
    import tensorflow as tf

    y = tf.constant(as_numpy(y_true).astype(np.float64))
    p = tf.constant(as_numpy(y_pred).astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(p)
        out = tf.convert_to_tensor(user.call_tensorflow(y, p))
        target = tf.reduce_mean(out) if reduction == "mean" else tf.reduce_sum(out)
    return tape.gradient(target, p).numpy()


def per_pixel_loss(loss: str, y_true, y_pred) -> np.ndarray:
    """The loss of each pixel, shape (N, H, W), float64."""
    _, p, scored, weight = _prepare(loss, y_true, y_pred)
    score = (p * scored).sum(axis=-1)
    return -weight * np.log(np.clip(score, EPSILON, 1.0 - EPSILON))


def loss_value(loss: str, y_true, y_pred, reduction: str = "mean", *, backend: str | None = None) -> np.ndarray:
    """The loss reduced as asked: a float64 scalar for mean/sum, the (N, H, W) map for none.
    ``backend``: where a registered loss without a numpy reference is run in float64 (see user_value)."""
    user = _user(loss)
    if user is not None:
        return user_value(user, y_true, y_pred, reduction, backend=backend)
    per_pixel = per_pixel_loss(loss, y_true, y_pred)
    return _reduce(per_pixel, reduction)


def gradient(loss: str, y_true, y_pred, reduction: str = "mean", *, backend: str | None = None) -> np.ndarray:
    """d(loss)/d(y_pred), float64, shape (N, H, W, C); for reduction none, of the map's sum."""
    user = _user(loss)
    if user is not None:
        return user_gradient(user, y_true, y_pred, reduction, backend=backend)
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
