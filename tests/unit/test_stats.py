"""The stopping rule's statistics: intervals that cover what they claim, a spread that a
detector's per-image latencies do not inflate."""
import random

from shared.stats import median_ci, p50_interval, relative_halfwidth, robust_cv


def test_order_statistic_ranks_are_the_binomial_ones():
    xs = list(range(1, 11))  # n = 10: ranks 2 and 9 cover the median with P = 97.9%
    assert median_ci(xs) == (2, 9)
    assert median_ci(xs[:5]) is None  # no pair of ranks of 5 reaches 95%
    assert median_ci(list(range(1, 7))) == (1, 6)


def _mixture(rng, calls, centres=(1900.0, 2000.0, 2100.0), noise=0.01):
    values, groups = [], []
    for i in range(calls):
        k = i % len(centres)
        values.append(centres[k] * rng.gauss(1, noise))
        groups.append(k)
    return values, groups


def test_intervals_cover_the_median_about_95_percent_of_the_time():
    rng = random.Random(0)
    big, _ = _mixture(rng, 300000)
    truth = sorted(big)[len(big) // 2]
    for calls in (12, 30, 90):  # order statistics (4 per input), then the stratified bootstrap
        hits = 0
        for _ in range(200):
            lo, hi = p50_interval(*_mixture(rng, calls))
            hits += lo <= truth <= hi
        assert hits >= 180, (calls, hits)  # 95% nominal, some slack for 200 trials


def test_a_stratified_interval_does_not_span_the_gaps_between_inputs():
    values, groups = _mixture(random.Random(1), 30)
    lo, hi = median_ci(sorted(values))
    assert hi - lo > 100  # exchangeable: from the first input's latencies to the third's
    assert relative_halfwidth(values, groups) < 0.012  # per input: the middle one decides


def test_robust_spread_ignores_the_spread_between_inputs_and_outliers():
    values, groups = _mixture(random.Random(2), 60)
    values[5] *= 3  # one hiccup
    assert 0.005 < robust_cv(values, groups) < 0.02
    assert robust_cv(values, [0] * len(values)) > 0.03  # what one group over all inputs says
