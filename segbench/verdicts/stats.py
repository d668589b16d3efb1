"""Regression verdicts from raw timing samples: a statistical test *and* a minimum effect.

For one cell, OLD and NEW are two sets of per-call times (one per timed round), grouped into
visits when the cell was built and timed several times (segbench run's visits, segbench ab's). The
test is made on what varies independently: per-visit medians (Welch's t-test on their logarithms,
and its interval of the ratio) when both sides have two visits or more, else the samples
themselves (the Mann-Whitney U test that asv uses, and a bootstrap interval of the ratio of
medians). The verdict is

- ``slower``: NEW is more than ``threshold`` above OLD, the test rejects "no change" at ``alpha``,
  and the confidence interval of the ratio lies wholly above 1;
- ``faster``: the mirror image (the ratio below ``1 / (1 + threshold)``);
- ``no change``: shown, not assumed: the whole confidence interval of the ratio lies inside the
  threshold band ``[1 / (1 + threshold), 1 + threshold]`` (an equivalence test, as TOST makes:
  both one-sided tests "NEW is not threshold slower" and "... not threshold faster" reject at
  (1 - CONFIDENCE) / 2);
- ``inconclusive``: anything else: a ratio beyond the threshold that the samples cannot tell from
  noise, or a ratio within the band whose interval reaches beyond it (the samples cannot exclude a
  change of the threshold's size), or too few samples for an interval.

So noise is never reported as a slowdown, a statistically real change smaller than the threshold
is not either, and "no change" is never said of samples too noisy to show it. The ratio is NEW/OLD
(above 1: slower).
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

# Why a cell is inconclusive (segbench.verdicts.compare names one per cell; the advice counts them).
UNDER_THE_FLOOR = "within the noise floor"
BEYOND_THE_BAND = "interval reaches beyond the band"
NOT_RESOLVED = "change not resolved by the test"
NO_INTERVAL = "too few samples for an interval"


@dataclass(frozen=True)
class Verdict:
    """What a comparison of OLD and NEW samples of one cell concluded, and why."""

    verdict: str
    ratio: float  # median(new) / median(old); by visits, the ratio of their geometric means
    low: float  # the ratio's confidence interval (CONFIDENCE)
    high: float
    p_value: float  # two-sided; NaN when there are too few samples
    n_old: int  # samples, or visits when the test was made on visits
    n_new: int
    old_center: float = math.nan  # what the ratio divides: medians, or geometric means of visit medians
    new_center: float = math.nan


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


def visit_test(old_visits: Sequence[float], new_visits: Sequence[float]) -> tuple[float, float, float, float]:
    """(ratio, low, high, p) from per-visit medians: Welch's t-test on their logarithms.

    A visit (a fresh build of the cell, in segbench run a fresh process too) is the unit that
    varies independently: samples within one visit share its state (which thread runs which op,
    where memory landed) and would make a test on pooled samples far too confident.
    """
    from scipy import stats as scipy_stats

    old_log, new_log = np.log(np.asarray(old_visits, float)), np.log(np.asarray(new_visits, float))
    diff = new_log.mean() - old_log.mean()
    var_old, var_new = old_log.var(ddof=1) / old_log.size, new_log.var(ddof=1) / new_log.size
    se = math.sqrt(var_old + var_new)
    if se == 0:
        p_value = 0.0 if diff != 0 else 1.0
        return math.exp(diff), math.exp(diff), math.exp(diff), p_value
    df = (var_old + var_new) ** 2 / (var_old**2 / (old_log.size - 1) + var_new**2 / (new_log.size - 1))
    t_crit = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df)
    p_value = float(2 * scipy_stats.t.sf(abs(diff) / se, df))
    return math.exp(diff), math.exp(diff - t_crit * se), math.exp(diff + t_crit * se), p_value


def within_band(low: float, high: float, threshold: float) -> bool:
    """Whether the interval [low, high] of a ratio lies inside the threshold band (both ends)."""
    return bool(low >= 1 / (1 + threshold) and high <= 1 + threshold)


def decide(
    old: Sequence[float],
    new: Sequence[float],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    old_visits: Sequence[float] | None = None,
    new_visits: Sequence[float] | None = None,
) -> Verdict:
    """The verdict for one cell from its OLD and NEW samples (see the module docstring).

    With per-visit medians on both sides (two visits or more each), the test is made on them
    (:func:`visit_test`); otherwise on the samples (Mann-Whitney U, bootstrap interval)."""
    if not (isinstance(threshold, (int, float)) and threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a positive fraction (0.1 = 10%), got {threshold!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    old_a = np.asarray(old, dtype=np.float64)
    new_a = np.asarray(new, dtype=np.float64)
    for name, sample in (("old", old_a), ("new", new_a)):
        if sample.ndim != 1 or sample.size == 0 or not np.all(np.isfinite(sample)) or np.any(sample <= 0):
            raise ValueError(f"{name} samples must be a non-empty list of positive finite times")
    by_visit = old_visits is not None and new_visits is not None and min(len(old_visits), len(new_visits)) >= 2
    if by_visit:
        ratio, low, high, p_value = visit_test(old_visits, new_visits)
        sizes = (len(old_visits), len(new_visits))
        centers = (float(np.exp(np.log(old_visits).mean())), float(np.exp(np.log(new_visits).mean())))
    else:
        ratio = float(np.median(new_a) / np.median(old_a))
        sizes = (old_a.size, new_a.size)
        centers = (float(np.median(old_a)), float(np.median(new_a)))
    beyond_up, beyond_down = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
    if not by_visit and min(old_a.size, new_a.size) < MIN_SAMPLES:
        # no interval, so no change cannot be shown either
        return Verdict(INCONCLUSIVE, ratio, math.nan, math.nan, math.nan, *sizes, *centers)
    if not by_visit:
        from scipy.stats import mannwhitneyu

        p_value = float(mannwhitneyu(old_a, new_a, alternative="two-sided").pvalue)
        low, high = ratio_interval(old_a, new_a)
    significant = p_value < alpha
    if beyond_up and significant and low > 1:
        verdict = SLOWER
    elif beyond_down and significant and high < 1:
        verdict = FASTER
    elif not (beyond_up or beyond_down) and within_band(low, high, threshold):
        verdict = NO_CHANGE
    else:
        verdict = INCONCLUSIVE
    return Verdict(verdict, ratio, low, high, p_value, *sizes, *centers)
