"""How a clip at [EPSILON, 1 - EPSILON] treats its bounds, which backends do not agree on.

The oracle clips as ``tf.clip_by_value``; the numpy oracles of Keras' own cross-entropies can be
evaluated under another rule (``with clip_rule(rule):``) so that ``segbench check`` holds a Keras
loss to the oracle under the rule its backend's clip follows, measured, and says so.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from segbench._constants import EPSILON


@dataclass(frozen=True)
class ClipRule:
    """What a clip(q, eps, 1 - eps) does at its bounds, which backends do not agree on.

    ``low``/``high``: where it clips; ``at_bound``: the share of the gradient it passes where q
    equals a bound; ``dtype``: the precision in which q meets its bounds (the implementation's own,
    or float64 for the oracle). The oracle's rule is tf.clip_by_value's (exact bounds, the whole
    gradient at them). Keras' own cross-entropies clip with the backend's clip instead: jnp.clip
    passes half the gradient at a bound (its max/min split ties), and Keras' ``ops.clip`` on PyTorch
    converts the bounds to float32 tensors, so a float64 loss clips at 1.0000000117e-07 and
    0.99999988. ``segbench check`` measures a Keras loss's rule (see check.measured_clip_rule) and,
    if it is one its backend is known for (KNOWN_CLIPS), holds the loss to the oracle under that
    rule, saying so; everything away from the bounds is unchanged.
    """

    low: float = EPSILON
    high: float = 1.0 - EPSILON
    at_bound: float = 1.0
    dtype: str = "float64"

    @property
    def oracles(self) -> bool:
        """The oracle's bounds and gradient at them, met in the implementation's own precision:
        the oracle's rule (its rounding of the bounds is in segbench.losses.tolerances.clip_error)."""
        return dataclasses.replace(self, dtype=ORACLE_CLIP.dtype) == ORACLE_CLIP

    def bounds(self) -> tuple[float, float]:
        """The bounds as the implementation meets them (rounded to its precision)."""
        if self.dtype == "float64":
            return self.low, self.high
        from segbench.losses.scenes import _numpy_dtype

        kind = _numpy_dtype(self.dtype).type
        return float(kind(self.low)), float(kind(self.high))

    def describe(self) -> str:
        share = {1.0: "the whole gradient", 0.5: "half the gradient"}.get(self.at_bound, f"{self.at_bound:g}")
        low, high = self.bounds()
        return f"bounds [{low:.10g}, {high:.10g}] in {self.dtype}, {share} at a bound"


ORACLE_CLIP = ClipRule()
FLOAT32_BOUNDS = (float(np.float32(EPSILON)), float(np.float32(1.0 - EPSILON)))
CLIP_RULE_LOSSES: set[str] = set()
"""The losses whose numpy oracle follows the ClipRule in effect (segbench.losses.standard adds its
cross-entropies); the rest clip as tf.clip_by_value, always."""

KNOWN_CLIPS: dict[str, tuple[tuple[float, float, float], ...]] = {
    # jnp.clip is minimum(maximum(x, low), high), and JAX splits the gradient of a tie of max/min
    "jax": ((EPSILON, 1.0 - EPSILON, 0.5),),
    # Keras' ops.clip on PyTorch makes its bounds float32 tensors (convert_to_tensor of a float)
    "torch": ((*FLOAT32_BOUNDS, 1.0),),
}
"""The ways a backend's clip departs from tf.clip_by_value's, as (low, high, share at a bound):
measured on Keras 3.15 (segbench check's probes) and accepted only on that backend. A loss whose
clip follows any other rule (no gradient at a bound, float32 bounds on TensorFlow) is held to the
oracle's rule and fails the check."""


def clip_rules(dtype: str, backend: str) -> tuple[ClipRule, ...]:
    """The rules a Keras loss on ``backend`` may follow on ``dtype`` inputs, the oracle's first:
    the oracle's (exactly, or met in ``dtype``, or in float32 where half precision computes in
    float32, as Keras on JAX does), then the backend's known departures (KNOWN_CLIPS) likewise."""
    precisions = dict.fromkeys((dtype, "float32" if dtype in ("float16", "bfloat16") else dtype))
    known = ((ORACLE_CLIP.low, ORACLE_CLIP.high, ORACLE_CLIP.at_bound), *KNOWN_CLIPS.get(backend, ()))
    return (
        ORACLE_CLIP,
        *(ClipRule(low, high, share, precision) for low, high, share in known for precision in precisions),
    )


_CLIP_RULE: contextvars.ContextVar[ClipRule] = contextvars.ContextVar("clip_rule", default=ORACLE_CLIP)


@contextlib.contextmanager
def clip_rule(rule: ClipRule) -> Iterator[None]:
    """Evaluate the cross-entropies' numpy oracles under ``rule`` (the oracle's own outside)."""
    token = _CLIP_RULE.set(rule)
    try:
        yield
    finally:
        _CLIP_RULE.reset(token)


def _met(q: np.ndarray, rule: ClipRule) -> np.ndarray:
    """q as the implementation compares it with its bounds (rounded to the rule's precision)."""
    if rule.dtype == "float64":
        return q
    from segbench.losses.scenes import _numpy_dtype

    return q.astype(_numpy_dtype(rule.dtype)).astype(np.float64)


def clip(q: np.ndarray) -> np.ndarray:
    """q clipped to the bounds of the rule in effect."""
    rule = _CLIP_RULE.get()
    low, high = rule.bounds()
    met = _met(q, rule)
    return np.where(met <= low, low, np.where(met >= high, high, q))


def pass_through(q: np.ndarray) -> np.ndarray:
    """The clip's derivative: 1 strictly within the bounds, ``at_bound`` at them, 0 beyond."""
    rule = _CLIP_RULE.get()
    low, high = rule.bounds()
    met = _met(q, rule)
    return np.where((met == low) | (met == high), rule.at_bound, ((met > low) & (met < high)).astype(np.float64))
