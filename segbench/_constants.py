"""Numbers every implementation must share, stated once."""

EPSILON = 1e-7
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before the log, as Keras does."""

REDUCTIONS = ("mean", "sum", "none")
"""mean: over all pixels of all images; sum: over them; none: the per-pixel map (N, H, W)."""

TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"rtol": 1e-10, "atol": 1e-12},
    # float32: a reduction over ~1e5 pixels in another order (numpy's pairwise sum, Eigen's tree,
    # XLA's fused loop) moves the mean by a few ulp; 1e-5 relative covers that with margin.
    "float32": {"rtol": 1e-5, "atol": 1e-6},
    "float16": {"rtol": 1e-2, "atol": 1e-3},
    "bfloat16": {"rtol": 4e-2, "atol": 1e-2},
}
"""How far an implementation computing in a dtype may be from the float64 oracle. Gradients are
compared with ``atol`` scaled by the largest oracle gradient entry (they are ~1/(N*H*W))."""
