"""How far an implementation may be from the float64 oracle: every tolerance of segbench, derived
here and nowhere else (``segbench check``, ``segbench values``, ``segbench run``'s
``within_tolerance`` and the tests all call these functions).

Let u be the unit roundoff of the dtype a loss computes in (half precision computes in float32,
segbench._constants.COMPUTE_DTYPES): u = 2^-24 = 6.0e-8 in float32, 2^-53 = 1.1e-16 in float64.
The inputs are the same numbers for the implementation and the oracle (the oracle reads the
float32 inputs exactly in float64), so every difference is rounding in the implementation.

**A sum or mean of n terms** (the loss's reduction; a per-image sum inside soft Dice) is allowed a
relative error ``u * (ELEMENT_ULPS + summation_error(kind, n))``:

- ``ELEMENT_ULPS`` (2): each term (a log, a clip, a product of C channels) is correct to about one
  ulp; errors of one sign in every term (a biased log) shift the sum by as much.
- ``pairwise`` (numpy's ``sum``, Eigen's tree reduction in TensorFlow eager and ``tf.function``):
  log2(n) levels of additions, each level's rounding errors independent, so the error grows like a
  random walk over the levels: ``PAIRWISE * sqrt(log2 n)``.
- ``sequential`` (XLA on the CPU reduces a fusion into one running sum per output): every addition
  rounds the running sum, ``SEQUENTIAL * sqrt(n)`` (the random walk of n roundings).
- ``float64`` (a formulation that accumulates in float64, e.g. segbench.losses.standard's soft Dice and
  Tversky): the sum is exact to float32's precision; only ELEMENT_ULPS remains.

**A gradient** is compared entry by entry: entry i may be off by
``rtol * (|g_i| + GRADIENT_FLOOR * typical)`` with ``rtol = u * (ELEMENT_ULPS + summation_error(kind,
terms))``, where ``terms`` is how many input values feed each entry (C for a per-pixel loss whose
score sums the channels; H*W*C for a per-image loss such as soft Dice, whose every entry holds the
image's sums) and ``typical`` is the median |g| over the oracle's nonzero entries. The relative part
holds entries well away from zero to their own precision; the absolute floor is set by the typical
magnitude, not the largest entry (the largest, 1/p at p near eps, is 10^6 times the median for the
cross-entropies: a floor scaled by it allowed 3,400 % at the median entry of the focal loss).

**A per-pixel (or per-image) map** (reduction none) is compared the same way, entry by entry, with
the floor ``MAP_FLOOR`` (1) instead of the typical entry: a loss term is a function of sums of
probabilities, O(1) numbers whose rounding is absolute (u each), and -log(s) turns an absolute
error of s into the same absolute error of the term (d(-log s) = -ds / s with s near 1): the
confident pixels, whose terms are ~1e-4, carry an absolute error of u (float32's numpy marginal
cross-entropy on the edge scene: 10 times a floor set by the median term).

The constants come from ``docs/tolerances/measure_errors.py`` (every loss x formulation x mode x
pass at batch 16, 512x512, C=4 and C=32, float32, on this project's 2-core AMD EPYC VM; the CSVs
beside it); ``docs/tolerances.md`` shows the measured error of every row against its tolerance.
They are set at about twice the largest error measured for their kind, since a second machine
(another SIMD width, another thread count, another order of the blocks) rounds differently and we
had only this one to measure on; ``tests/losses/test_tolerances.py`` fails if any measured row is over its
tolerance or more than MAX_SLACK times under it (where the model can say so: see the docs).
"""

from __future__ import annotations

import math

import numpy as np

from segbench._constants import compute_dtype

ELEMENT_ULPS = 1.5
"""A value's terms: each correct to about an ulp (float32 log, clip, C-channel product); errors of
one sign in every term shift the mean by as much. Measured (C=4): numpy's and Eigen's means of the
cross-entropies 3.4e-9 to 1.0e-7 (0.06 u to 1.7 u) off, the pairwise sum's part included."""
PAIRWISE = 1.0
"""Pairwise/tree sums: u * PAIRWISE * sqrt(log2 n); with ELEMENT_ULPS 4.5 u = 2.7e-7 at n = 4.2e6,
2.6 times the largest pairwise row (1.0e-7, blocked tf.function marginal CE), 80 times the smallest."""
SEQUENTIAL = 3.0
"""XLA's running sums: u * SEQUENTIAL * sqrt(n), 3.7e-4 at n = 4.2e6: 3.3 times the largest
measured at batch 16, 512x512 (fused cross-entropy at C=32, 1.1e-4 = 0.9 u sqrt(n)); correlated
terms round alike and add up faster than a random walk: on check's edge scene (repeated values,
n = 4096) the marginal cross-entropy's XLA mean is 9.1e-6 = 2.4 u sqrt(n) off, 0.8 of this.
XLA reduces in stages (the reference cross-entropy: a reduce-window of 65536 terms, then 256), so
where the compiled HLO is at hand (segbench check's bandwidth-sized cells) n is its longest float32
running sum (segbench.losses.xla_sums; value_tolerance's ``running``), not every term of the mean:
one sum of every term left 11 cells 393-14652 times under their tolerance, the HLO's n 6 cells
225-2593 times (docs/tolerances.md)."""
GRADIENT_ULPS = 8.0
"""A gradient entry is a chain of roundings (1/p, the clip's select, the 1/n of the mean, Keras'
row normalisation): measured up to 4.1 u (Keras' cross-entropy in eager) at C=4, 3.2 u for the
marginal cross-entropy; 8 u is twice the largest."""
GRADIENT_FLOOR = 1.0
MAP_FLOOR = 1.0
LOSS_CONDITION: dict[str, dict[str, float]] = {
    # 1 - 2I/S and 1 - TP/D: the ratio (at most 1, ~0.8-0.9) is rounded absolutely, a few times
    # (the division, the cast from the float64 sums), and the value (~0.1-0.2) inherits that
    # error: allowed rtol * (|v| + 1). Measured: soft Dice's reference (float64 sums) on the
    # 2x32x32x4 scene, 7.2e-8 (1.2 u absolute; a floor of 0.25, set at batch 16, allowed 4.1e-8:
    # segbench choose then called the correct formulation off); Tversky in eager at batch 16,
    # 512x512 1.7e-8 absolute (0.3 u); soft Dice in numpy there 1.8e-9 (below LUCKY_ULPS).
    "soft_dice": {"value_floor": 1.0},
    "tversky": {"value_floor": 1.0},
    # (1 - q)^2 log q for q near 1: 1 - q carries an absolute error of u, a relative one of u / (1 - q)
    # in the gradient; measured 6.9e-6 (115 u) in every mode at the benchmark's scene, numpy included
    # (conditioning, not a bug), and 0.93 of 32 x on check's binary_nonsquare (C=2): 64.
    "categorical_focal_crossentropy": {"gradient": 64.0, "value": 2.0},
}
"""Losses whose own conditioning multiplies their float32 error (measured, docs/tolerances.md)."""
MAX_SLACK = 100.0
"""The goal: no measured row with a tolerance more than this many times its error. It cannot hold
for a row whose error is below LUCKY_ULPS * u: the rounding errors of a sum cancelled by chance
(the marginal cross-entropy's pairwise mean at C=4 is 3.4e-9 off, 0.06 u, while the same
summation is 4 u off on check's edge scene, whose repeated terms round alike); such rows are
reported, not used to tighten the model."""
LUCKY_ULPS = 0.1

SUMMATION = {"numpy": "pairwise", "eager": "pairwise", "function": "pairwise", "xla": "sequential"}
"""How each mode sums a long reduction (see the module docstring); None or an unknown mode: the
worst of them (sequential)."""

FLOAT64_ACCUMULATION: set[tuple[str, str]] = set()
"""(loss, formulation) pairs whose TensorFlow code accumulates its sums in float64 (filled by
segbench.losses.standard: its own soft Dice and Tversky; Keras' versions, the ``keras`` formulation, do not)."""


def unit_roundoff(dtype: str) -> float:
    return float(np.finfo(compute_dtype(dtype)).eps) / 2


def summation(mode: str | None, loss: str | None = None, dtype: str = "float32", formulation: str | None = None) -> str:
    """The kind of summation ``mode`` does for ``loss`` (in ``formulation``, default reference) on
    inputs of ``dtype``: pairwise, sequential or float64 (a float64 accumulator only beats float32
    inputs' own precision)."""
    float64 = (loss, formulation or "reference") in FLOAT64_ACCUMULATION
    if float64 and mode not in (None, "numpy") and compute_dtype(dtype) != "float64":
        return "float64"
    return SUMMATION.get(mode or "", "sequential")


def clip_error(dtype: str) -> float:
    """The absolute error of a term clipped at 1 - EPSILON: 1 - 1e-7 rounds to 1 - 2^-23 in
    float32, so -log of it is 1.19e-7 where float64 has 1.0e-7 (1.9e-8 off per such term). The
    missing-annotation merges and the edge scenes put whole images of pixels there: the
    marginal cross-entropy's mean on binary_nonsquare (C=2) was 10 u off from it alone."""
    from segbench._constants import EPSILON

    computed = np.dtype(compute_dtype(dtype)).type
    return abs(-math.log(float(computed(1.0) - computed(EPSILON))) - (-math.log1p(-EPSILON)))


def summation_error(kind: str, terms: int) -> float:
    """The allowed error of a sum of ``terms`` values, in units of u (beyond ELEMENT_ULPS)."""
    n = max(int(terms), 1)
    if kind == "float64" or n == 1:
        return 0.0
    if kind == "pairwise":
        return PAIRWISE * math.sqrt(math.log2(n))
    if kind == "sequential":
        return SEQUENTIAL * math.sqrt(n)
    raise ValueError(f"unknown summation {kind!r}")


def value_tolerance(
    dtype: str,
    terms: int = 1,
    mode: str | None = None,
    loss: str | None = None,
    *,
    scale: float = 1.0,
    clipped: float = 0.0,
    formulation: str | None = None,
    running: int | None = None,
) -> dict[str, float]:
    """``rtol`` and ``atol`` for a mean (``scale`` 1) or a sum (``scale`` = the number of values it
    adds) of per-pixel or per-image terms, ``terms`` input values summed in all; ``clipped``: the
    fraction of the terms clipped at 1 - EPSILON (each clip_error(dtype) off); ``running``: for a
    sequential (XLA) sum, the most terms one running sum of the compiled code adds
    (segbench.losses.xla_sums), when it is known: the sum's error grows with it, not with ``terms``."""
    if running is not None and summation(mode, loss, dtype, formulation) == "sequential":
        terms = min(int(terms), max(int(running), 1))
    rtol = map_rtol(dtype, terms, mode, loss, formulation)  # the same rounding as one entry of a map
    # A loss term is at least -log(1 - 1e-7) ~ 1e-7 where it is not 0: below that, zero.
    floor = LOSS_CONDITION.get(loss or "", {}).get("value_floor", 1e-7)
    return {"rtol": rtol, "atol": (rtol * floor + clip_error(dtype) * clipped) * scale}


def _rtol(ulps: float, quantity: str, dtype: str, terms: int, mode, loss, formulation) -> float:
    """u x (``ulps`` + the summation's error over ``terms``) x the loss's conditioning of ``quantity``."""
    condition = LOSS_CONDITION.get(loss or "", {}).get(quantity, 1.0)
    kind = summation(mode, loss, dtype, formulation)
    return unit_roundoff(dtype) * (ulps + summation_error(kind, terms)) * condition


def gradient_rtol(
    dtype: str, terms: int = 1, mode: str | None = None, loss: str | None = None, formulation: str | None = None
) -> float:
    """The relative part of a gradient's tolerance (``terms``: input values feeding each entry)."""
    return _rtol(GRADIENT_ULPS, "gradient", dtype, terms, mode, loss, formulation)


def map_rtol(
    dtype: str, terms: int = 1, mode: str | None = None, loss: str | None = None, formulation: str | None = None
) -> float:
    """The relative part of a per-pixel or per-image map's tolerance (entry by entry, MAP_FLOOR)."""
    return _rtol(ELEMENT_ULPS, "value", dtype, terms, mode, loss, formulation)


def typical_magnitude(expected: np.ndarray) -> float:
    """The median |g| over the nonzero entries of the oracle's gradient (0 if there are none)."""
    magnitude = np.abs(np.asarray(expected, dtype=np.float64))
    nonzero = magnitude[magnitude > 0]
    return float(np.median(nonzero)) if nonzero.size else 0.0


def map_score(got: np.ndarray, expected: np.ndarray, rtol: float) -> float:
    """A per-pixel or per-image map's worst entry in tolerances: |d_i| / (rtol (|v_i| + MAP_FLOOR))."""
    return gradient_score(got, expected, rtol, typical=MAP_FLOOR / GRADIENT_FLOOR)


def gradient_score(got: np.ndarray, expected: np.ndarray, rtol: float, typical: float | None = None) -> float:
    """The worst entry's error in tolerances (<= 1 is within): |d_i| / (rtol (|g_i| + floor))."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != np.shape(expected) or not np.all(np.isfinite(got)):
        return math.inf
    if not got.size:
        return 0.0
    typical = typical_magnitude(expected) if typical is None else typical
    allowed = rtol * (np.abs(expected) + GRADIENT_FLOOR * typical) + np.finfo(np.float64).tiny
    return float(np.max(np.abs(got - expected) / allowed))


def for_mean(
    dtype: str,
    mode: str,
    loss: str,
    pixels: int,
    classes: int,
    formulation: str | None = None,
    reduction: str = "mean",
) -> dict[str, float]:
    """The tolerance of a cell's mean, or with ``reduction`` "sum" its sum (``segbench run``'s and
    ``segbench choose``'s within_tolerance): segbench's losses sum their per-pixel terms; a
    registered loss may sum every input entry (a per-image loss does)."""
    from segbench.losses.registry import LOSSES

    spec = LOSSES.get(loss)
    terms = pixels * classes if spec is not None and spec.user is not None else pixels
    scale = pixels if reduction == "sum" else 1.0
    return value_tolerance(dtype, terms, mode, loss, scale=scale, formulation=formulation)


def within(value: float, expected: float, tol: dict[str, float]) -> bool:
    """Whether a scalar ``value`` is within ``tol`` (rtol, atol) of the oracle's ``expected``."""
    return bool(abs(value - expected) <= tol["atol"] + tol["rtol"] * abs(expected))
