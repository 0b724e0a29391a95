"""NAB scoring against cases small enough to compute by hand."""

from __future__ import annotations

import math

import pytest

from opsloop.evals.nab import PROFILES, ScoredSeries, probation_rows, scaled_sigmoid, score_corpus


def _sig(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def _series(hits: dict[int, float]) -> ScoredSeries:
    """100 rows (probation: rows 0-14), one window at rows 40-49."""
    scores = [0.0] * 100
    for row, score in hits.items():
        scores[row] = score
    return ScoredSeries("hand", scores, [(40, 49)])


def test_scaled_sigmoid_is_best_at_a_window_start_and_zero_at_its_end() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0
    assert probation_rows(100) == 15 and probation_rows(100_000) == 750


def test_a_hand_computed_corpus_scores_what_the_rules_say() -> None:
    # Row 5: inside probation, ignored. Row 45: the window's first detection, at relative
    # position -(49 - 45 + 1) / 10 = -0.5. Row 47: a second detection in the window, not
    # counted. Row 52: a false positive (52 - 49) / (10 - 1) past the window. Row 20: a false
    # positive before any window (-1). Row 20's score is lower, so the best threshold is 1.0.
    series = _series({5: 1.0, 45: 1.0, 47: 1.0, 52: 1.0, 20: 0.5})
    tp, fp_after = _sig(-0.5), _sig(3 / 9)
    perfect = _sig(-1.0)
    standard, low_fp, low_fn = score_corpus([series])

    assert standard.threshold == 1.0
    assert (standard.true_positives, standard.false_positives, standard.false_negatives) == (
        1, 1, 0)
    assert standard.raw == pytest.approx(tp + 0.11 * fp_after)
    assert standard.score == pytest.approx(100 * (tp + 0.11 * fp_after + 1) / (perfect + 1))
    assert low_fp.raw == pytest.approx(tp + 0.22 * fp_after)
    assert low_fn.score == pytest.approx(100 * (tp + 0.11 * fp_after + 2) / (perfect + 2))
    # By hand: tp = 2/(1+e^-2.5)-1 = 0.84828; fp = 2/(1+e^(5/3))-1 = -0.68226;
    # raw = 0.84828 - 0.11 x 0.68226 = 0.77324; perfect = 2/(1+e^-5)-1 = 0.98661; null = -1.
    assert standard.raw == pytest.approx(0.77324, abs=1e-5)
    assert standard.score == pytest.approx(100 * 1.77324 / 1.98661, abs=1e-3)


def test_one_threshold_serves_the_whole_corpus() -> None:
    # Series a only scores at its window with 0.9; series b has a 0.95 false positive. A
    # threshold of 0.9 catches both (one hit, one false positive); above 0.95, nothing.
    a = _series({42: 0.9})
    b = ScoredSeries("b", [0.0] * 60 + [0.95] + [0.0] * 39, [])
    (standard, *_) = score_corpus([a, b], PROFILES[:1])
    assert standard.threshold == 0.9
    assert standard.raw == pytest.approx(_sig(-0.8) - 0.11)


def test_no_detections_score_zero_and_perfect_detections_score_a_hundred() -> None:
    null = score_corpus([_series({})])
    perfect = score_corpus([_series({40: 1.0})])
    assert [r.score for r in null] == [0.0, 0.0, 0.0]
    assert [r.score for r in perfect] == pytest.approx([100.0, 100.0, 100.0])
