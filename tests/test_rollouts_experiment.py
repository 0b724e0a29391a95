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


def test_counts_become_arms_by_the_metrics_counted_event() -> None:
    from opsloop.rollouts.experiment import arms

    counts = {"off": {"requests": 1000, "errors": 20, "conversions": 100},
              "on": {"requests": 900, "errors": 45, "conversions": 120}}
    # error_ratio: the counted event is an error (its rate is the error ratio).
    assert arms(counts, "error_ratio", "off", "on") == (Arm("off", 20, 1000), Arm("on", 45, 900))
    assert arms(counts, "conversion", "off", "on") == (Arm("off", 100, 1000),
                                                       Arm("on", 120, 900))


@pytest.mark.parametrize(("counts", "says"), [
    ({"off": {"requests": 10, "errors": 1}}, "no counts for variant 'on' \\(variants counted: "
                                             "off\\)"),
    ({"off": {"requests": 10, "errors": 1}, "on": {"requests": 5, "errors": 6}},
     "6 errors out of 5 requests"),
    ({"off": {"requests": 10, "errors": 1}, "on": {"requests": -1, "errors": 0}},
     "requests is -1"),
    ({"off": {"requests": 10}, "on": {"requests": 5, "errors": 1}}, "'off': errors is None"),
])
def test_counts_that_do_not_fit_are_named(counts: dict[str, dict[str, int]], says: str) -> None:
    from opsloop.rollouts.experiment import arms

    with pytest.raises(ValueError, match=says):
        arms(counts, "error_ratio", "off", "on")


BASE = {"version": 1, "defaults": {"steps": [100], "analysis": {"metrics": [
    {"name": "e", "metric": "error_ratio", "failure": {"gt": 0.05}}]}}}


@pytest.mark.parametrize(("experiment", "flags", "says"), [
    ({"metric": "error_ratio", "better": "higher"}, {}, "better: higher for metric error_ratio"),
    ({"metric": "conversion", "treatment": "off"}, {}, "control and treatment are both 'off'"),
    ({"metric": "clicks"}, {}, "experiments.f.metric"),
    ({"metric": "conversion", "alpha": 1.5}, {}, "experiments.f.alpha"),
    ({"metric": "conversion"}, {"f": {"service": "web"}},
     "experiments.f.service is 'checkout' but flags.f.service is 'web'"),
])
def test_experiment_declarations_are_checked_with_the_field_named(
        experiment: dict[str, object], flags: dict[str, object], says: str) -> None:
    from pydantic import ValidationError

    from opsloop.policy.schema.rollouts import RolloutsPolicy

    spec = {"service": "checkout", "control": "off", "treatment": "on", **experiment}
    with pytest.raises(ValidationError) as caught:
        RolloutsPolicy.model_validate({**BASE, "flags": flags, "experiments": {"f": spec}})
    assert says in str(caught.value)


def test_a_metric_decides_which_way_is_better_unless_stated() -> None:
    from opsloop.policy.schema.rollouts import ExperimentSpec

    spec = {"service": "s", "control": "off", "treatment": "on"}
    assert ExperimentSpec.model_validate({**spec, "metric": "error_ratio"}).better_is == "lower"
    assert ExperimentSpec.model_validate({**spec, "metric": "conversion"}).better_is == "higher"
