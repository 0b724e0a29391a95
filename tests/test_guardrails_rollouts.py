"""Guardrails and rollouts.yaml: a plan whose advances need approval makes every widening of
its flag wait for a human, naming the plan's rule; `auto` plans loosen nothing."""

from __future__ import annotations

import pytest
from test_policy_support import shipped

from opsloop.models import DecisionOutcome, ParamValue, RemediationAction, Severity
from opsloop.policy import GuardrailContext, Policies, decide
from opsloop.policy.schema.rollouts import RolloutsPolicy

AUTO, APPROVAL = DecisionOutcome.AUTO, DecisionOutcome.NEEDS_APPROVAL
FLAG, SERVICE = "new-checkout-flow", "checkout"
AT_25 = GuardrailContext(current_replicas=6, flag_percent=25)


def managing(defaults_advances: str, **flag: object) -> Policies:
    """The shipped policies with FLAG managed by rollouts.yaml."""
    base = shipped()
    rollouts = RolloutsPolicy.model_validate({
        "version": 1,
        "defaults": {**base.rollouts.defaults.model_dump(), "advances": defaults_advances},
        "flags": {FLAG: {"service": SERVICE, **flag}}})
    return base.model_copy(update={"rollouts": rollouts})


def rollout(percent: ParamValue, flag: str = FLAG, service: str = SERVICE
            ) -> RemediationAction:
    return RemediationAction(id="a-roll", type="set_flag_rollout", service=service,
                             params={"flag": flag, "percent": percent})


def test_an_advance_on_a_plan_that_needs_approval_waits_naming_the_plans_rule() -> None:
    decision = decide(rollout(50), Severity.SEV3, managing("needs_approval"), AT_25)
    assert decision.outcome is APPROVAL
    assert decision.rule == "rollouts.yaml:defaults.advances"
    assert any(FLAG in r and "25% -> 50%" in r for r in decision.reasons)


def test_a_flags_own_advances_setting_is_the_rule_named() -> None:
    decision = decide(rollout(50), Severity.SEV3,
                      managing("auto", advances="needs_approval"), AT_25)
    assert (decision.outcome, decision.rule) == (APPROVAL,
                                                 f"rollouts.yaml:flags.{FLAG}.advances")


def test_an_unknown_current_percent_counts_as_widening() -> None:
    unknown = GuardrailContext(current_replicas=6, flag_percent=None)
    assert decide(rollout(5), Severity.SEV3, managing("needs_approval"),
                  unknown).outcome is APPROVAL


@pytest.mark.parametrize("percent", [25, 5, 0])
def test_narrowing_or_keeping_the_rollout_is_not_an_advance(percent: int) -> None:
    decision = decide(rollout(percent), Severity.SEV3, managing("needs_approval"), AT_25)
    assert decision.outcome is AUTO, decision.reasons


def test_an_automatic_plan_adds_no_constraint_and_loosens_nothing() -> None:
    auto = managing("auto")
    assert decide(rollout(50), Severity.SEV3, auto, AT_25).outcome is AUTO
    # SEV1 still asks a human, by its own rule: the plan never loosens a stricter one.
    sev1 = decide(rollout(50), Severity.SEV1, auto, AT_25)
    assert (sev1.outcome, sev1.rule) == (APPROVAL, "remediation.yaml:severities.SEV1")
    # And a denied parameter stays denied whatever the plan says.
    assert decide(rollout(150), Severity.SEV3, managing("needs_approval"),
                  AT_25).outcome is DecisionOutcome.DENY


@pytest.mark.parametrize(("flag", "service"), [("other-flag", SERVICE), (FLAG, "search")])
def test_flags_the_plan_does_not_manage_are_left_to_the_other_rules(flag: str,
                                                                    service: str) -> None:
    decision = decide(rollout(50, flag, service), Severity.SEV3, managing("needs_approval"),
                      AT_25)
    assert decision.outcome is AUTO, decision.reasons


def with_experiment(policies: Policies) -> Policies:
    rollouts = RolloutsPolicy.model_validate({
        **policies.rollouts.model_dump(),
        "experiments": {FLAG: {"service": SERVICE, "owner": "growth", "metric": "conversion",
                               "control": "off", "treatment": "on"}}})
    return policies.model_copy(update={"rollouts": rollouts})


@pytest.mark.parametrize("percent", [0, 50])
def test_an_experiments_split_is_changed_only_by_a_human_either_way(percent: int) -> None:
    decision = decide(rollout(percent), Severity.SEV3, with_experiment(managing("auto")),
                      AT_25)
    assert (decision.outcome, decision.rule) == (APPROVAL, f"rollouts.yaml:experiments.{FLAG}")
    assert any("growth" in r for r in decision.reasons)
    # Killing the flag is not a change of split: a failing experiment is still switched off.
    kill = RemediationAction(id="a-kill", type="disable_flag", service=SERVICE,
                             params={"flag": FLAG})
    assert decide(kill, Severity.SEV3, with_experiment(managing("auto")),
                  AT_25).outcome is AUTO
