"""A rollout step's analysis says what Argo Rollouts would: Successful, Failed or
Inconclusive, and no data is never success."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from opsloop.policy.schema.rollouts import RolloutPlan
from opsloop.rollouts.analysis import (
    AnalysisSpec,
    Condition,
    MetricCheck,
    Phase,
    analyse,
    judge,
    windows,
)

BOTH = MetricCheck(name="errors", metric="error_ratio", success=Condition(lte=0.01),
                   failure=Condition(gt=0.05))
SUCCESS_ONLY = MetricCheck(name="errors", metric="error_ratio", success=Condition(lte=0.01))
FAILURE_ONLY = MetricCheck(name="errors", metric="error_ratio", failure=Condition(gt=0.05))
NAN = math.nan


@pytest.mark.parametrize(("check", "value", "phase"), [
    (BOTH, 0.005, Phase.SUCCESSFUL),
    (BOTH, 0.09, Phase.FAILED),
    (BOTH, 0.03, Phase.INCONCLUSIVE),  # between the two conditions: neither met
    (SUCCESS_ONLY, 0.03, Phase.FAILED),  # only a success condition: not met is a failure
    (FAILURE_ONLY, 0.03, Phase.SUCCESSFUL),  # only a failure condition: not met is success
    (FAILURE_ONLY, 0.09, Phase.FAILED),
    (BOTH, None, Phase.INCONCLUSIVE),
    (BOTH, NAN, Phase.INCONCLUSIVE),
    (FAILURE_ONLY, NAN, Phase.INCONCLUSIVE),  # no data is never success
    (FAILURE_ONLY, math.inf, Phase.INCONCLUSIVE),
])
def test_one_measurement_is_judged_as_argo_judges_it(check: MetricCheck, value: float | None,
                                                     phase: Phase) -> None:
    assert judge(value, check, "inconclusive") is phase


def test_no_data_can_be_declared_a_failure() -> None:
    assert judge(None, BOTH, "failed") is Phase.FAILED
    assert judge(NAN, BOTH, "failed") is Phase.FAILED


def test_a_window_with_a_nan_is_missing_not_averaged() -> None:
    assert windows([0.01, 0.01, NAN, 0.02, 0.02, 0.02], 3) == [0.01, None, 0.02]
    assert windows([0.01], 3) == [None, None, 0.01]  # fewer points than windows


def spec(**limits: object) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"metrics": [BOTH.model_dump()], "measurements": 5,
                                        **limits})


def test_failures_beyond_the_failure_limit_fail_the_analysis() -> None:
    points = [0.0, 0.0, 0.09, 0.0, 0.0]
    assert analyse(spec(failure_limit=0), {"error_ratio": points}).phase is Phase.FAILED
    result = analyse(spec(failure_limit=1), {"error_ratio": points})
    assert result.phase is Phase.SUCCESSFUL
    assert [m.phase for m in result.metrics[0].measurements].count(Phase.FAILED) == 1


def test_consecutive_failures_beyond_their_limit_fail_even_under_the_failure_limit() -> None:
    points = [0.0, 0.09, 0.09, 0.09, 0.0]
    result = analyse(spec(failure_limit=5, consecutive_failure_limit=2),
                     {"error_ratio": points})
    assert result.phase is Phase.FAILED and "3 failed in a row" in result.reason
    assert analyse(spec(failure_limit=5, consecutive_failure_limit=3),
                   {"error_ratio": points}).phase is Phase.SUCCESSFUL


def test_missing_data_makes_the_analysis_inconclusive_never_successful() -> None:
    assert analyse(spec(), {"error_ratio": None}).phase is Phase.INCONCLUSIVE
    assert analyse(spec(), {}).phase is Phase.INCONCLUSIVE
    gaps = [0.0, NAN, 0.0, NAN, 0.0]
    assert analyse(spec(inconclusive_limit=1), {"error_ratio": gaps}).phase is \
        Phase.INCONCLUSIVE
    assert analyse(spec(inconclusive_limit=2), {"error_ratio": gaps}).phase is \
        Phase.SUCCESSFUL


def test_the_worst_metric_decides() -> None:
    latency = MetricCheck(name="p99", metric="latency_p99_ms", failure=Condition(gt=500))
    two = AnalysisSpec(metrics=[BOTH, latency], measurements=2)
    healthy = {"error_ratio": [0.0, 0.0], "latency_p99_ms": [200.0, 210.0]}
    assert analyse(two, healthy).phase is Phase.SUCCESSFUL
    slow = {**healthy, "latency_p99_ms": [200.0, 900.0]}
    result = analyse(two, slow)
    assert result.phase is Phase.FAILED and result.reason.startswith("p99 (latency_p99_ms")
    unclear = {**healthy, "error_ratio": [0.03, 0.03]}
    assert analyse(two, unclear).phase is Phase.INCONCLUSIVE


def test_a_plan_is_checked_where_it_is_written() -> None:
    with pytest.raises(ValidationError, match="last step must be 100"):
        RolloutPlan.model_validate({"steps": [1, 5, 50], "analysis": spec().model_dump()})
    with pytest.raises(ValidationError, match="rise strictly"):
        RolloutPlan.model_validate({"steps": [5, 1, 100], "analysis": spec().model_dump()})
    with pytest.raises(ValidationError, match="unknown metric 'errors_per_second'"):
        MetricCheck(name="x", metric="errors_per_second", failure=Condition(gt=1))
    with pytest.raises(ValidationError, match="needs a success or a failure condition"):
        MetricCheck(name="x", metric="error_ratio")
