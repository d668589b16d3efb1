"""Numbers every implementation must share, stated once."""

EPSILON = 1e-7
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before the log, as Keras does."""

REDUCTIONS = ("mean", "sum", "none")
"""mean: over all pixels of all images; sum: over them; none: the per-pixel map (N, H, W)."""

TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"rtol": 1e-10, "atol": 1e-12},
    # float32: a few ulp of rounding in each per-pixel term and a short sum over C.
    "float32": {"rtol": 1e-5, "atol": 1e-6},
}
"""How far an implementation may be from the float64 oracle, by the dtype it computes in (half
precision computes in float32, see COMPUTE_DTYPES), before any long sum. Gradients are compared
with ``atol`` scaled by the largest oracle gradient entry (they are ~1/(N*H*W))."""

SUM_ERROR_FACTOR = 4.0
"""A sum of n terms in a dtype with unit roundoff u, added one after the other (XLA's loop on the
CPU), has a relative error whose standard deviation is about u * sqrt(n / 3) when the rounding
errors are independent: each addition rounds the running sum and the errors add up like a random
walk. Measured at batch 16, 512x512 (n = 4.2e6) in float32: 2.6e-5 to 4.3e-5 against the model's
3.5e-5. Terms that repeat (the edge-case scenes of segbench check, bands of identical values) make
the errors correlated: XLA's sum over 4096 such terms was 9.1e-6 off, four standard deviations. A
mean or sum over n terms is therefore allowed ``SUM_ERROR_FACTOR * u * sqrt(n)`` (about seven
standard deviations) when that is more than the dtype's base ``rtol``. Element-wise results (the
per-pixel map, the gradient) keep the base tolerance, so a loosened sum hides no broken term."""


def tolerance(dtype: str, terms: int = 1) -> dict[str, float]:
    """``rtol`` and ``atol`` for a result of inputs in ``dtype`` that sums ``terms`` values."""
    import numpy as np

    computed = compute_dtype(dtype)
    base = TOLERANCES[computed]
    unit_roundoff = float(np.finfo(computed).eps) / 2
    return {"rtol": max(base["rtol"], SUM_ERROR_FACTOR * unit_roundoff * terms**0.5), "atol": base["atol"]}


COMPUTE_DTYPES: dict[str, str] = {"float16": "float32", "bfloat16": "float32"}
"""Half-precision inputs are computed in float32; the loss and its gradient come out in float32.

Keras' mixed-precision guide keeps the model's last layer and the loss in float32 for the same
reasons: in float16, EPSILON = 1e-7 is below the smallest normal number (6.1e-5) and the gradient
1/p overflows float16's maximum (65504) for p below about 1.5e-5, giving inf and NaN; bfloat16 has
float32's range but only 8 bits of mantissa, so a mean over many pixels loses most of its digits.
Inputs in other dtypes are computed in their own dtype."""


def compute_dtype(dtype: str) -> str:
    """The dtype a loss is computed (and returned) in for inputs of ``dtype``."""
    return COMPUTE_DTYPES.get(dtype, dtype)
