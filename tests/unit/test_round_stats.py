"""Statistics over interleaved rounds: drift common to every row sits in the absolute interval
and cancels in the paired ratio."""
import numpy as np

from coordinator.run.round_stats import MIN_ROUNDS, combine, estimate, known, paired, summarise


def drifting(seed=1, rounds=20, ratio=1.5, jitter=0.005):
    """Two rows timed in the same rounds on a machine drifting by +-25% from round to round."""
    rng = np.random.default_rng(seed)
    drift = 1 + 0.25 * np.sin(np.linspace(0, 6, rounds)) + rng.normal(0, 0.05, rounds)
    fast = 40.0 * drift * (1 + rng.normal(0, jitter, rounds))
    slow = 40.0 * ratio * drift * (1 + rng.normal(0, jitter, rounds))
    return list(map(float, fast)), list(map(float, slow))


def test_the_paired_ratio_cancels_the_drift_the_absolute_figure_carries():
    fast, slow = drifting()
    figures = summarise({"torch": slow, "ort": fast}, reference="torch", target=0.02)
    ort = figures["ort"]
    assert ort.vs_reference.crosses(1.5) and ort.vs_reference.halfwidth() < 0.01
    assert ort.p50_ms.halfwidth() > 0.05  # the drift is in the absolute interval
    assert ort.drift > 0.05 and ort.paired_spread < 0.02
    assert figures["torch"].vs_fastest.crosses(1.5) and figures["ort"].vs_fastest.value == 1.0
    assert known(ort, 0.02) and not known(ort, 0.001)


def test_an_interval_is_never_narrower_than_the_gap_between_the_two_half_runs():
    values = [10.0] * 10 + [12.0] * 10  # a step half way: each half is tight, the run is not
    e = estimate(values)
    assert e.low <= 10.0 and e.high >= 12.0


def test_too_few_rounds_are_never_known():
    fast, slow = drifting(rounds=MIN_ROUNDS - 1, jitter=0.0)
    figures = summarise({"torch": slow, "ort": fast}, reference="torch", target=0.5)
    assert not known(figures["ort"], 0.5)


def test_ratios_pair_only_rounds_both_rows_ran():
    assert paired([2.0, None, 6.0], [1.0, 1.0, None]) == [2.0]


def test_a_row_in_two_processes_is_their_geometric_mean_and_their_gap_is_in_every_interval():
    fast, slow = drifting()
    # the reference in two processes, one 6% slower for its whole life: the same rounds, the same drift
    values, spread = combine({"torch": [slow, [v * 1.06 for v in slow]], "ort": [fast]})
    assert np.allclose(values["torch"], [v * 1.06 ** 0.5 for v in slow])
    assert abs(spread - np.log(1.06) / np.sqrt(2)) < 1e-3  # two offsets of +-3%: one degree of freedom
    alone = summarise(values, "torch", 0.02, {"torch": 2, "ort": 1})
    floored = summarise(values, "torch", 0.02, {"torch": 2, "ort": 1}, spread)
    assert alone["ort"].vs_reference.halfwidth() < 0.01  # the rounds alone cannot see the gap
    half = floored["ort"].vs_reference.halfwidth()
    assert 1.96 * spread * np.sqrt(1.5) * 0.95 < half < 1.96 * spread * np.sqrt(1.5) * 1.1
    assert floored["ort"].processes == 1 and floored["torch"].processes == 2
    assert floored["torch"].vs_reference.halfwidth() == 0  # a row over itself is exactly 1
    # a process that left mid-run (None) leaves the round to the others only if all had one
    values, _ = combine({"torch": [[1.0, 2.0], [1.0, None]]})
    assert values["torch"] == [1.0, None]
