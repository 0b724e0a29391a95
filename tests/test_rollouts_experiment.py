"""An experiment's comparison says what the two-proportion z-test says (numbers pinned to
statsmodels' proportions_ztest and Wald interval), and leaves unclear cases to the owner."""

from __future__ import annotations

import pytest

from opsloop.rollouts.experiment import Arm, compare


def test_a_clear_difference_names_the_better_variant_with_the_tests_numbers() -> None:
    c = compare(Arm("off", 200, 1000), Arm("on", 250, 1000))
    # statsmodels: proportions_ztest([250, 200], [1000, 1000]) and
    # confint_proportions_2indep(250, 1000, 200, 1000, method="wald")
    assert c.z == pytest.approx(2.677397763008329, rel=1e-9)
    assert c.p_value == pytest.approx(0.007419649261025687, rel=1e-9)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.013463621687539826, 0.08653637831246015))
    assert (c.verdict, c.winner) == ("clear", "on")
    assert "z 2.68, p 0.0074" in c.reason


def test_for_a_metric_where_lower_is_better_the_other_variant_wins() -> None:
    c = compare(Arm("off", 200, 1000), Arm("on", 250, 1000), better="lower")
    assert (c.verdict, c.winner) == ("clear", "off")


def test_a_tight_interval_around_zero_is_a_clear_no_difference() -> None:
    c = compare(Arm("off", 5000, 50000), Arm("on", 5020, 50000))
    assert (c.verdict, c.winner) == ("clear", None) and c.p_value > 0.05
    assert -0.01 < c.ci_low < c.ci_high < 0.01


def test_not_significant_but_not_ruled_out_is_ambiguous() -> None:
    c = compare(Arm("off", 100, 1000), Arm("on", 110, 1000))
    assert c.verdict == "ambiguous" and c.winner is None
    assert "not ruled out" in c.reason and "off 10.00% of 1000" in c.reason


def test_below_the_minimum_sample_nothing_is_concluded() -> None:
    c = compare(Arm("off", 20, 100), Arm("on", 60, 100), min_sample=1000)
    assert c.verdict == "ambiguous" and "too few trials" in c.reason
