"""The error-budget policy state (health.yaml error_budget_policy) and what it lets through."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_policy_support import NOW, FixedTelemetry, copy_policies, edit, shipped, steady

from opsloop.graph.nodes.guardrails import guardrail_context
from opsloop.graph.runner import OperateLoop
from opsloop.models import DecisionOutcome, Incident, ParamValue, RemediationAction, Severity
from opsloop.policy import PolicyError, budget_exhausted, decide, load_policies
from opsloop.policy.guardrails import GuardrailContext
from opsloop.policy.health import BudgetState, budget_state
from opsloop.policy.schema import Policies
from opsloop.simulator import SimEnvironment

AUTO, APPROVAL, DENY = (DecisionOutcome.AUTO, DecisionOutcome.NEEDS_APPROVAL, DecisionOutcome.DENY)
POLICY = "health.yaml:error_budget_policy"

# A 28-day 99.9% budget is 40.32 bad minutes; minutes at 50% errors spend half a minute each.
SPENT_A_QUARTER = steady(0.5, 20)  # 10 bad minutes: 75.2% left -> normal
SPENT_MOST = steady(0.5, 62)  # 31 bad minutes: 23.1% left -> hold
SPENT_ALL = steady(0.5, 81)  # 40.5 bad minutes: -0.4% left -> freeze


def checkout(values: list[float]) -> FixedTelemetry:
    return FixedTelemetry().set("checkout", "error_ratio", values)


def act(kind: str, service: str = "checkout", **params: ParamValue) -> RemediationAction:
    return RemediationAction(id=f"a-{kind}", type=kind, service=service, params=params)


def state_of(values: list[float], policies: Policies | None = None) -> BudgetState:
    return budget_state("checkout", policies or shipped(), checkout(values))


def in_state(values: list[float], policies: Policies | None = None) -> GuardrailContext:
    budget = state_of(values, policies)
    return GuardrailContext(current_replicas=6, flag_percent=25, budget=budget,
                            budget_exhausted=budget.state == "freeze")


WIDEN = act("set_flag_rollout", flag="new-checkout-flow", percent=50)
RISK_REDUCING = [
    act("rollback_deploy"),
    act("disable_flag", flag="new-checkout-flow"),
    act("set_flag_rollout", flag="new-checkout-flow", percent=5),  # narrowing
    act("restart"),
    act("scale_out", replicas=8),
]


@pytest.mark.parametrize(
    ("values", "state", "rule"),
    [
        ([], "normal", POLICY),
        (SPENT_A_QUARTER, "normal", POLICY),
        (SPENT_MOST, "hold", f"{POLICY}.hold"),
        (SPENT_ALL, "freeze", f"{POLICY}.freeze"),
    ],
    ids=["untouched", "quarter-spent", "most-spent", "all-spent"],
)
def test_the_state_follows_the_budget_remaining(values: list[float], state: str,
                                                rule: str) -> None:
    budget = state_of(values)
    assert (budget.state, budget.rule) == (state, rule)
    assert budget.slo == "checkout-availability"
    assert budget.remaining == pytest.approx(1 - sum(values) / 40.32)


def test_freeze_is_what_budget_exhausted_reports() -> None:
    assert budget_exhausted("checkout", shipped(), checkout(SPENT_ALL))
    assert not budget_exhausted("checkout", shipped(), checkout(SPENT_MOST))


def test_a_service_without_an_slo_is_normal_and_says_why() -> None:
    budget = budget_state("billing-batch", shipped(), checkout(SPENT_ALL))
    assert budget.state == "normal"
    assert budget.rule == "health.yaml:slos"
    assert "no SLO" in budget.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_an_unmeasurable_budget_is_held_not_trusted(bad: float) -> None:
    budget = state_of([*SPENT_A_QUARTER, bad])
    assert budget.state == "hold"
    assert budget.rule == f"{POLICY}.no_data"
    assert budget.remaining is None
    decision = decide(WIDEN, Severity.SEV3, shipped(), in_state([*SPENT_A_QUARTER, bad]))
    assert decision.outcome is APPROVAL
    assert decision.rule == f"{POLICY}.no_data"


def test_a_latency_minute_that_is_not_a_number_is_not_a_good_minute() -> None:
    slo = {"name": "checkout-latency", "service": "checkout", "objective": 0.99,
           "indicator": {"kind": "latency", "metric": "latency_p99_ms", "threshold": 400}}
    policies = with_health(shipped(), slos=[*shipped().health.slos_for("checkout"), slo])
    telemetry = FixedTelemetry().set("checkout", "latency_p99_ms", [*steady(120, 60), math.nan])
    budget = budget_state("checkout", policies, telemetry)
    assert (budget.state, budget.slo, budget.rule) == ("hold", "checkout-latency",
                                                      f"{POLICY}.no_data")


def test_the_worst_slo_of_a_service_sets_its_state() -> None:
    slo = {"name": "checkout-latency", "service": "checkout", "objective": 0.99,
           "indicator": {"kind": "latency", "metric": "latency_p99_ms", "threshold": 400}}
    policies = with_health(shipped(), slos=[*shipped().health.slos_for("checkout"), slo])
    # Availability is fine; 403 minutes over 400 ms is all of a 28-day 1% budget (403.2 min).
    telemetry = checkout(SPENT_A_QUARTER).set("checkout", "latency_p99_ms", steady(900, 404))
    budget = budget_state("checkout", policies, telemetry)
    assert (budget.state, budget.slo) == ("freeze", "checkout-latency")
    assert budget.remaining is not None and budget.remaining < 0


def test_hold_sends_risk_adding_actions_to_a_human_and_names_the_rule() -> None:
    normal = decide(WIDEN, Severity.SEV3, shipped(), in_state(SPENT_A_QUARTER))
    held = decide(WIDEN, Severity.SEV3, shipped(), in_state(SPENT_MOST))
    assert normal.outcome is AUTO
    assert held.outcome is APPROVAL
    assert held.rule == f"{POLICY}.hold"
    assert any("error-budget hold" in r for r in held.reasons)


def test_freeze_denies_risk_adding_actions_and_names_the_rule() -> None:
    frozen = decide(WIDEN, Severity.SEV3, shipped(), in_state(SPENT_ALL))
    assert frozen.outcome is DENY
    assert frozen.rule == f"{POLICY}.freeze"
    # remediation.yaml's change freeze applies as well, and is listed.
    assert any("remediation.yaml:change_freeze.risk_adding" in r for r in frozen.reasons)
    shrink = decide(act("scale_in", replicas=4), Severity.SEV4, shipped(),
                    GuardrailContext(current_replicas=6, budget=state_of(SPENT_ALL)))
    assert shrink.outcome is DENY  # was needs_approval (scale_in's own rule) when normal
    assert shrink.rule == f"{POLICY}.freeze"


@pytest.mark.parametrize("values", [SPENT_MOST, SPENT_ALL], ids=["hold", "freeze"])
@pytest.mark.parametrize("action", RISK_REDUCING, ids=lambda a: f"{a.type}-{a.params}")
def test_risk_reducing_actions_stay_automatic_in_hold_and_freeze(
    action: RemediationAction, values: list[float]
) -> None:
    decision = decide(action, Severity.SEV3, shipped(), in_state(values))
    assert decision.outcome is AUTO, decision.reasons
    assert any("reduces risk" in r and POLICY in r for r in decision.reasons)


def test_the_strictest_constraint_still_wins_over_the_budget_state() -> None:
    # SEV1 waits for a human even for a rollback in freeze; a destructive action stays denied.
    rollback = decide(act("rollback_deploy"), Severity.SEV1, shipped(), in_state(SPENT_ALL))
    assert rollback.outcome is APPROVAL
    assert rollback.rule == "remediation.yaml:severities.SEV1"
    drop = decide(act("drop_table", "checkout"), Severity.SEV3, shipped(), in_state(SPENT_MOST))
    assert drop.outcome is DENY
    assert drop.rule == "remediation.yaml:actions.drop_table.outcome.SEV3"
    # A hold at SEV1 changes nothing the severity did not already require.
    assert decide(WIDEN, Severity.SEV1, shipped(), in_state(SPENT_MOST)).outcome is APPROVAL


def test_the_lines_and_outcomes_are_policy_values(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "hold: {budget_remaining_lte: 0.25, risk_adding: needs_approval}",
         "hold: {budget_remaining_lte: 0.8, risk_adding: deny}")
    stricter = load_policies(d)
    budget = state_of(SPENT_A_QUARTER, stricter)  # 75.2% left: now under the hold line
    assert budget.state == "hold"
    decision = decide(WIDEN, Severity.SEV3, stricter, in_state(SPENT_A_QUARTER, stricter))
    assert (decision.outcome, decision.rule) == (DENY, f"{POLICY}.hold")


def test_a_freeze_line_above_the_hold_line_is_refused(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "freeze: {budget_remaining_lte: 0.0,",
         "freeze: {budget_remaining_lte: 0.5,")
    with pytest.raises(PolicyError, match="freeze must start at or below the hold line"):
        load_policies(d)


def test_an_older_health_yaml_with_change_freeze_keeps_its_meaning(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    text = (d / "health.yaml").read_text()
    start = text.index("# Error-budget policy")
    end = text.index("# The weekly health-target review")
    (d / "health.yaml").write_text(
        text[:start] + "change_freeze:\n  budget_remaining_lte: 0.0\n\n" + text[end:])
    older = load_policies(d)
    assert older.health.error_budget_policy.hold is None
    assert state_of(SPENT_MOST, older).state == "normal"  # no hold state then
    assert state_of(SPENT_ALL, older).state == "freeze"
    # What the freeze blocks is remediation.yaml's change_freeze, as before.
    frozen = decide(WIDEN, Severity.SEV3, older, in_state(SPENT_ALL, older))
    assert (frozen.outcome, frozen.rule) == (DENY, "remediation.yaml:change_freeze.risk_adding")


def test_change_freeze_and_error_budget_policy_together_are_refused(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "error_budget_policy:\n",
         "change_freeze:\n  budget_remaining_lte: 0.0\nerror_budget_policy:\n")
    with pytest.raises(PolicyError, match="remove change_freeze"):
        load_policies(d)


def test_the_guardrails_node_measures_the_state_in_production(loop: OperateLoop) -> None:
    env = SimEnvironment.create("bad_deploy", 7)
    incident = Incident(id="INC-0001", title="checkout errors", environment="sim:test",
                        group_key="g", services=["checkout"], opened_at=NOW,
                        severity=Severity.SEV3)
    ctx = loop.context(env)
    normal = guardrail_context(ctx, incident, WIDEN, [])
    assert normal.budget is not None and normal.budget.state == "normal"
    # Four weeks at a 0.08% error ratio leave a fifth of a 0.1% budget: hold.
    env.state.services["checkout"].prior_error_ratio = 0.0008
    held = guardrail_context(ctx, incident, WIDEN, [])
    assert held.budget is not None and held.budget.state == "hold"
    assert not held.budget_exhausted
    decision = decide(WIDEN, Severity.SEV3, loop.policies, held)
    assert (decision.outcome, decision.rule) == (APPROVAL, f"{POLICY}.hold")
    env.state.services["checkout"].prior_error_ratio = 0.002
    frozen = guardrail_context(ctx, incident, WIDEN, [])
    assert frozen.budget is not None and frozen.budget.state == "freeze"
    assert frozen.budget_exhausted
    assert decide(WIDEN, Severity.SEV3, loop.policies, frozen).outcome is DENY


def with_health(policies: Policies, **changes: object) -> Policies:
    health = policies.health.model_validate({**policies.health.model_dump(), **changes})
    return policies.model_copy(update={"health": health})
