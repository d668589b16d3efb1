"""PyTorch implementations of the seed's three losses, written to read their inputs as few times as possible.

Each loss is a plain function ``loss(y_true, y_pred, reduction="mean")`` of two tensors of shape
(N, H, W, C) (``y_true`` one-hot along C, ``y_pred`` probabilities), on any device, that returns
the mean over all pixels (``"sum"``: their sum; ``"none"``: the (N, H, W) map). Call them as they
are (eager) or through ``torch.compile``; differentiate them with ``torch.autograd`` over
``y_pred``. Importing this module imports PyTorch and nothing of TensorFlow.

Semantics are those of :mod:`segbench.losses.oracle` (the float64 reference every backend is checked
against), for one-hot ``y_true``:

- each pixel is scored on ``p[true class]``, its loss is ``-log(clip(score, EPSILON, 1 - EPSILON))``,
  and the gradient passes through the clip where ``EPSILON <= score <= 1 - EPSILON``
  (``torch.clamp``'s gradient, as ``tf.clip_by_value``'s, includes the bounds);
- missing-annotation: a background pixel whose argmax (lowest index on ties, as ``torch.argmax``
  documents) is an object class absent from its image's annotation has weight 0 (a constant);
- marginal: a background pixel is scored on ``p[0]`` plus the probabilities of the classes absent
  from its image.

Half-precision inputs are computed in float32 (``segbench._constants.COMPUTE_DTYPES``).

The formulations are those of :mod:`segbench.losses.jax_impl` (see its docstring): under
``torch.compile`` each loss is a few reductions over the pixels, which Inductor fuses; the
missing-annotation loss reads its inputs once by summing background terms per (image, predicted
class) next to the class presence and leaving the absent classes out afterwards; marginal reads
``y_true`` once more for the class presence (1.5 reads).
"""

from __future__ import annotations

import torch

from segbench._constants import EPSILON, REDUCTIONS

__all__ = [
    "IMPLEMENTATIONS",
    "categorical_crossentropy",
    "marginal_crossentropy",
    "missing_annotation_crossentropy",
]


def promote(x: torch.Tensor) -> torch.Tensor:
    """Half precision computed in float32; other float dtypes as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def clip(x: torch.Tensor) -> torch.Tensor:
    """Clip to [EPSILON, 1 - EPSILON]; the gradient passes where the value is inside, bounds included."""
    return torch.clamp(x, EPSILON, 1.0 - EPSILON)


def _nll(score: torch.Tensor) -> torch.Tensor:
    return -torch.log(clip(score))


def _reduce(per_pixel: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_pixel.mean()
    if reduction == "sum":
        return per_pixel.sum()
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _inputs(y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y_true, y_pred) promoted, the background mask (N, H, W) and the class indices (C,)."""
    y_true, y_pred = promote(y_true), promote(y_pred)
    background = y_true[..., 0] > 0
    classes = torch.arange(y_pred.shape[-1], device=y_pred.device)
    return y_true, y_pred, background, classes


def _absent_objects(y_true: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, C) bool: object classes (not background) that no pixel of the image is annotated with."""
    return (torch.amax(y_true, dim=(1, 2)) <= 0) & (classes > 0)


def categorical_crossentropy(y_true, y_pred, reduction: str = "mean") -> torch.Tensor:
    """Mean over pixels of ``-log(clip(p[true class]))``."""
    y_true, y_pred = promote(y_true), promote(y_pred)
    return _reduce(_nll((y_true * y_pred).sum(dim=-1)), reduction)


def missing_annotation_crossentropy(y_true, y_pred, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy without the background pixels that predict an object absent from the annotation."""
    _check_reduction(reduction)
    y_true, y_pred, background, classes = _inputs(y_true, y_pred)
    term = _nll((y_true * y_pred).sum(dim=-1))
    predicted = torch.argmax(y_pred, dim=-1)  # lowest index on ties
    is_predicted = predicted[..., None] == classes  # (N, H, W, C)
    absent = _absent_objects(y_true, classes)
    zero = torch.zeros((), dtype=term.dtype, device=term.device)
    if reduction == "none":
        dropped = background & (is_predicted & absent[:, None, None, :]).any(dim=-1)
        return torch.where(dropped, zero, term)
    # One pass: per image, the background terms by predicted class and the object pixels' terms.
    background_by_class = torch.where(background[..., None] & is_predicted, term[..., None], zero).sum(dim=(1, 2))
    objects = torch.where(background, zero, term).sum(dim=(1, 2))
    total = objects.sum() + torch.where(absent, zero, background_by_class).sum()
    return total / term.numel() if reduction == "mean" else total


def marginal_crossentropy(y_true, y_pred, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy where a background pixel is scored on p[0] plus the absent classes' probabilities."""
    y_true, y_pred, background, classes = _inputs(y_true, y_pred)
    merge = (_absent_objects(y_true, classes) | (classes == 0)).to(y_pred.dtype)  # (N, C)
    # Which channels a pixel's score sums: its own class, or for background the merged ones.
    weights = torch.where(background[..., None], merge[:, None, None, :], y_true)
    return _reduce(_nll((weights * y_pred).sum(dim=-1)), reduction)


IMPLEMENTATIONS = {
    "categorical_crossentropy": categorical_crossentropy,
    "missing_annotation_crossentropy": missing_annotation_crossentropy,
    "marginal_crossentropy": marginal_crossentropy,
}
"""Loss name (as in segbench.LOSSES) -> its PyTorch function."""
