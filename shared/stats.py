"""How well a median is known, and a robust spread: the timed loop's stopping rule calls these
between timed calls, and the result's statistics come from them.
"""
import math
from typing import Optional, Sequence, Tuple

RESAMPLES = 1000
STRATIFIED_MAX = 2000  # calls; above, the order-statistic interval resolves the inputs anyway
STRATUM_MIN = 5  # calls per input before a bootstrap within each input is trusted

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def median_ci(sorted_xs: Sequence[float]) -> Optional[Tuple[float, float]]:
    """The distribution-free 95% confidence interval of the median: a pair of order
    statistics x(j) <= median <= x(k) with P >= 0.95 (the binomial(n, 1/2) ranks, exact up to
    n = 200, normal approximation above). None when n < 6: no pair of ranks reaches 95%."""
    n = len(sorted_xs)
    if n < 6:
        return None
    if n <= 200:
        # Largest j with P(B <= j - 1) <= 2.5%, B ~ binomial(n, 1/2); then k = n + 1 - j.
        total, cum, j = 2 ** n, 0, 0
        while True:
            cum += math.comb(n, j)
            if cum * 40 > total:  # P(B <= j) > 2.5%
                break
            j += 1
        j = max(j, 1)
    else:
        j = max(1, int(math.floor(n / 2 - Z95 * math.sqrt(n) / 2)))
    k = n + 1 - j
    return sorted_xs[j - 1], sorted_xs[k - 1]


def p50_interval(values: Sequence[float], groups: Sequence[int]) -> Optional[Tuple[float, float]]:
    """The 95% interval of the median of calls made on several inputs in turn (`groups`: each
    call's input). The inputs are a fixed design, not a random draw: a detector's latency
    depends on the image, and an interval that treats calls as exchangeable spans the gaps
    between the inputs' latencies. So, with enough calls per input, a bootstrap that resamples
    within each input (stratified, seeded); otherwise the order-statistic interval."""
    by_group = {}  # type: dict
    for v, g in zip(values, groups):
        by_group.setdefault(g, []).append(v)
    sizes = [len(v) for v in by_group.values()]
    if len(by_group) < 2 or min(sizes) < STRATUM_MIN or len(values) > STRATIFIED_MAX:
        return median_ci(sorted(values))
    import numpy as np

    rng = np.random.default_rng(0)
    draws = [np.asarray(xs)[rng.integers(0, len(xs), size=(RESAMPLES, len(xs)))] for xs in by_group.values()]
    medians = np.median(np.concatenate(draws, axis=1), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def relative_halfwidth(values: Sequence[float], groups: Sequence[int]) -> float:
    """Half the 95% interval of the median over the median (inf when it is not known yet)."""
    ci = p50_interval(values, groups)
    mid = _median(sorted(values))
    if ci is None or mid <= 0:
        return math.inf
    return (ci[1] - ci[0]) / 2 / mid


def robust_cv(values: Sequence[float], groups: Sequence[int]) -> float:
    """1.4826 x the median absolute deviation from each group's own median, relative to it,
    pooled over groups: a coefficient of variation that neither outliers nor the spread
    *between* inputs (a detector's latency depends on the image) inflate."""
    by_group = {}  # type: dict
    for v, g in zip(values, groups):
        by_group.setdefault(g, []).append(v)
    deviations = []  # type: List[float]
    for xs in by_group.values():
        xs = sorted(xs)
        mid = _median(xs)
        if mid > 0:
            deviations += [abs(x - mid) / mid for x in xs]
    return 1.4826 * _median(sorted(deviations)) if deviations else 0.0


def _median(sorted_xs: Sequence[float]) -> float:
    n = len(sorted_xs)
    return (sorted_xs[(n - 1) // 2] + sorted_xs[n // 2]) / 2 if n else 0.0
