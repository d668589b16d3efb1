"""segbench.verdicts.stats: verdicts from raw samples, a test and a minimum effect."""

import numpy as np
import pytest

from segbench.verdicts import stats


def draw(median, spread, n, seed):
    return median * np.exp(spread * np.random.default_rng(seed).standard_normal(n))


@pytest.mark.parametrize(
    ("ratio", "spread", "n", "expected"),
    [
        (1.00, 0.02, 20, "no change"),
        (1.05, 0.02, 20, "no change"),  # real, but below the 10 % threshold
        (1.20, 0.02, 20, "slower"),
        (0.80, 0.02, 20, "faster"),
        (1.20, 0.60, 5, "inconclusive"),  # beyond the threshold, lost in the noise
    ],
)
def test_verdicts(ratio, spread, n, expected):
    verdict = stats.decide(draw(1e-3, spread, n, 1), draw(1e-3 * ratio, spread, n, 2), threshold=0.1)
    assert verdict.verdict == expected
    assert verdict.n_old == verdict.n_new == n
    if expected in ("slower", "faster"):
        assert verdict.low <= verdict.ratio <= verdict.high
        assert verdict.p_value < stats.DEFAULT_ALPHA


def test_identical_samples_never_flag_over_many_draws():
    # an A/A comparison: both sides from one distribution, 1000 times
    flagged = sum(
        stats.decide(draw(1e-3, 0.05, 10, 2 * i), draw(1e-3, 0.05, 10, 2 * i + 1)).verdict in ("slower", "faster")
        for i in range(1000)
    )
    assert flagged == 0


def test_the_interval_is_seeded():
    a, b = draw(1e-3, 0.1, 10, 3), draw(1.1e-3, 0.1, 10, 4)
    assert stats.ratio_interval(a, b) == stats.ratio_interval(a, b)


def test_too_few_samples_cannot_be_slower():
    assert stats.decide([1e-3], [2e-3]).verdict == "inconclusive"
    # nor "no change": without an interval nothing shows that the change is within the threshold
    assert stats.decide([1e-3, 1e-3], [1.01e-3, 1.0e-3]).verdict == "inconclusive"


def test_no_change_only_when_the_interval_lies_inside_the_band():
    # the ratio of medians is within 10 % in both; only the narrow interval shows it (TOST)
    narrow = stats.decide(draw(1e-3, 0.02, 20, 1), draw(1e-3, 0.02, 20, 2))
    assert narrow.verdict == "no change" and 1 / 1.1 <= narrow.low <= narrow.high <= 1.1
    wide = stats.decide(draw(1e-3, 0.15, 8, 11), draw(1e-3, 0.15, 8, 12))
    assert 1 / 1.1 < wide.ratio < 1.1 and (wide.low < 1 / 1.1 or wide.high > 1.1)
    assert wide.verdict == "inconclusive"
    # by visits: an A/A pair like the one that printed "no change 1.09 0.105-11.314"
    visits = stats.decide([1e-3] * 6, [1e-3] * 6, old_visits=[1e-3, 0.5e-3], new_visits=[1.09e-3, 0.6e-3])
    assert visits.verdict == "inconclusive" and visits.high > 1.1
    assert (
        stats.decide(
            [1e-3] * 6, [1e-3] * 6, old_visits=[1e-3, 1.01e-3, 0.99e-3], new_visits=[1.01e-3, 1e-3, 1.0e-3]
        ).verdict
        == "no change"
    )
    assert stats.within_band(0.95, 1.05, 0.1) and not stats.within_band(0.5, 1.05, 0.1)


@pytest.mark.parametrize(
    ("old", "new", "kwargs", "message"),
    [
        ([], [1.0], {}, "old samples"),
        ([1.0], [float("nan")], {}, "new samples"),
        ([1.0], [-1.0], {}, "new samples"),
        ([1.0], [1.0], {"threshold": 0}, "threshold must be a positive fraction"),
        ([1.0], [1.0], {"alpha": 2}, "alpha must be in"),
    ],
)
def test_bad_input_names_the_argument(old, new, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stats.decide(old, new, **kwargs)


def test_visits_are_the_unit_of_the_test():
    rng = np.random.default_rng(5)
    # two builds of a cell can sit in different states (+25 %): samples within a visit agree closely
    state = {"fast": 1.35e-3, "slow": 1.7e-3}

    def visit(level, n=5):
        return list(level * np.exp(0.02 * rng.standard_normal(n)))

    old_visits = [visit(state[s]) for s in ("fast", "fast", "slow")]
    new_visits = [visit(state[s]) for s in ("slow", "slow", "slow")]  # one draw in eight: all slow
    pooled_old = [t for v in old_visits for t in v]
    pooled_new = [t for v in new_visits for t in v]
    assert stats.decide(pooled_old, pooled_new).verdict == "slower"  # samples alone: a false alarm
    medians = [float(np.median(v)) for v in old_visits], [float(np.median(v)) for v in new_visits]
    verdict = stats.decide(pooled_old, pooled_new, old_visits=medians[0], new_visits=medians[1])
    assert verdict.verdict == "inconclusive" and (verdict.n_old, verdict.n_new) == (3, 3)
    # a real 20 % slowdown of a cell whose builds agree is found from three visits a side
    stable_old = [float(np.median(visit(1e-3))) for _ in range(3)]
    stable_new = [float(np.median(visit(1.2e-3))) for _ in range(3)]
    found = stats.decide(stable_old, stable_new, old_visits=stable_old, new_visits=stable_new)
    assert found.verdict == "slower" and found.low > 1.1
