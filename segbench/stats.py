"""Regression verdicts from raw timing samples: a statistical test *and* a minimum effect.

For one cell, OLD and NEW are two sets of per-call times (one per timed round). The verdict is

- ``slower``: NEW's median is more than ``threshold`` above OLD's, the Mann-Whitney U test (what
  asv uses on its recorded samples) rejects "same distribution" at ``alpha``, and the bootstrap
  confidence interval of the ratio of medians lies wholly above 1;
- ``faster``: the mirror image (the ratio below ``1 / (1 + threshold)``);
- ``no change``: the ratio of medians is within the threshold band;
- ``inconclusive``: the ratio is beyond the threshold but the samples cannot tell it from noise.

So noise is never reported as a slowdown, and a statistically real change smaller than the
threshold is not either. The ratio is NEW/OLD (above 1: slower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SLOWER, FASTER, NO_CHANGE, INCONCLUSIVE = "slower", "faster", "no change", "inconclusive"
VERDICTS = (SLOWER, FASTER, NO_CHANGE, INCONCLUSIVE)
DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
MIN_SAMPLES = 3  # fewer per side and no test can say anything: beyond the threshold is inconclusive


@dataclass(frozen=True)
class Verdict:
    """What a comparison of OLD and NEW samples of one cell concluded, and why."""

    verdict: str
    ratio: float  # median(new) / median(old)
    low: float  # the ratio's bootstrap confidence interval (CONFIDENCE)
    high: float
    p_value: float  # two-sided Mann-Whitney U; NaN when there are too few samples
    n_old: int
    n_new: int


def ratio_interval(
    old: np.ndarray, new: np.ndarray, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(new) / median(old), resampling each side on its own.

    Seeded, so the same samples always give the same interval (and the same verdict).
    """
    rng = np.random.default_rng(seed)
    old_medians = np.median(rng.choice(old, size=(BOOTSTRAP_RESAMPLES, old.size)), axis=1)
    new_medians = np.median(rng.choice(new, size=(BOOTSTRAP_RESAMPLES, new.size)), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(new_medians / old_medians, [tail, 100 - tail])
    return float(low), float(high)


def decide(
    old: Sequence[float],
    new: Sequence[float],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
) -> Verdict:
    """The verdict for one cell from its OLD and NEW samples (see the module docstring)."""
    if not (isinstance(threshold, (int, float)) and threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a positive fraction (0.1 = 10%), got {threshold!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    old_a = np.asarray(old, dtype=np.float64)
    new_a = np.asarray(new, dtype=np.float64)
    for name, sample in (("old", old_a), ("new", new_a)):
        if sample.ndim != 1 or sample.size == 0 or not np.all(np.isfinite(sample)) or np.any(sample <= 0):
            raise ValueError(f"{name} samples must be a non-empty list of positive finite times")
    ratio = float(np.median(new_a) / np.median(old_a))
    beyond_up, beyond_down = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
    if min(old_a.size, new_a.size) < MIN_SAMPLES:
        verdict = INCONCLUSIVE if beyond_up or beyond_down else NO_CHANGE
        return Verdict(verdict, ratio, math.nan, math.nan, math.nan, old_a.size, new_a.size)

    from scipy.stats import mannwhitneyu

    p_value = float(mannwhitneyu(old_a, new_a, alternative="two-sided").pvalue)
    low, high = ratio_interval(old_a, new_a)
    significant = p_value < alpha
    if beyond_up and significant and low > 1:
        verdict = SLOWER
    elif beyond_down and significant and high < 1:
        verdict = FASTER
    elif beyond_up or beyond_down:
        verdict = INCONCLUSIVE
    else:
        verdict = NO_CHANGE
    return Verdict(verdict, ratio, low, high, p_value, old_a.size, new_a.size)
