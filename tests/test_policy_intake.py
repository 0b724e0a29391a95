"""intake.yaml's Alertmanager semantics: matchers, silences, inhibition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from test_policy_support import shipped

from opsloop.policy.schema import InhibitRule, IntakePolicy, Matcher
from opsloop.policy.schema.intake import all_match, compile_matchers

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_shipped_intake_groups_by_env_with_alertmanager_timings() -> None:
    intake = shipped().intake
    assert intake.group_by == ["env"]
    assert (intake.group_wait_minutes, intake.group_interval_minutes) == (1, 5)


def test_text_and_object_matchers_mean_the_same() -> None:
    text = Matcher.model_validate('alertname=~"High.*"')
    obj = Matcher.model_validate({"name": "alertname", "value": "High.*", "isRegex": True})
    assert text == obj
    assert text.matches({"alertname": "HighErrorRate"})
    # Alertmanager anchors regexes: a substring match is not a match.
    assert not text.matches({"alertname": "NotHighErrorRate"})


def test_missing_label_matches_the_empty_value() -> None:
    assert Matcher.model_validate('team=""').matches({"alertname": "X"})
    assert Matcher.model_validate('team!="ops"').matches({})


def test_bad_regex_is_rejected() -> None:
    with pytest.raises(ValidationError, match="not a valid regex"):
        Matcher.model_validate('alertname=~"(["')


def test_silence_applies_only_inside_its_window() -> None:
    intake = IntakePolicy.model_validate(
        {
            "version": 1,
            "silences": [
                {
                    "matchers": [{"name": "alertname", "value": "CostAnomaly"}],
                    "startsAt": T0.isoformat(),
                    "endsAt": (T0 + timedelta(hours=2)).isoformat(),
                    "createdBy": "alice",
                    "comment": "load test",
                }
            ],
        }
    )
    labels = {"alertname": "CostAnomaly", "service": "recommendations"}
    assert intake.silenced(labels, T0 + timedelta(minutes=30))
    assert not intake.silenced(labels, T0 + timedelta(hours=2))  # endsAt is exclusive
    assert not intake.silenced({"alertname": "HighErrorRate"}, T0 + timedelta(minutes=30))


def test_silence_must_end_after_it_starts() -> None:
    with pytest.raises(ValidationError, match="endsAt must be after startsAt"):
        IntakePolicy.model_validate(
            {
                "version": 1,
                "silences": [
                    {
                        "matchers": ['alertname="X"'],
                        "startsAt": T0.isoformat(),
                        "endsAt": T0.isoformat(),
                        "createdBy": "a",
                        "comment": "c",
                    }
                ],
            }
        )


def test_inhibition_needs_equal_labels() -> None:
    rule = shipped().intake.inhibit_rules[0]
    page = {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"}
    ticket = {"alertname": "HighLatencyP99", "service": "checkout", "severity": "ticket"}
    elsewhere = {**ticket, "service": "search"}
    assert rule.inhibits(ticket, [page])
    assert not rule.inhibits(elsewhere, [page])
    assert not rule.inhibits(page, [ticket])


def test_alerts_matching_both_sides_do_not_inhibit_each_other() -> None:
    rule = InhibitRule.model_validate(
        {
            "source_matchers": ['alertname=~".*"'],
            "target_matchers": ['alertname=~".*"'],
            "equal": ["service"],
        }
    )
    a = {"alertname": "A", "service": "x"}
    b = {"alertname": "B", "service": "x"}
    assert not rule.inhibits(a, [a, b])


def test_compiled_matchers_decide_as_the_matchers_do() -> None:
    matchers = [Matcher.model_validate(text) for text in
                ('service=~"check.*"', 'env!="staging"', 'team=""', 'pod!~"canary-.*"')]
    match = compile_matchers(matchers)
    cases = [
        {"service": "checkout", "env": "prod"},
        {"service": "checkout", "env": "staging"},
        {"service": "xcheckout", "env": "prod"},  # a regex matches the whole value
        {"service": "checkout", "team": "payments"},
        {"service": "checkout", "pod": "canary-1"},
        {"service": "checkout", "pod": "main-1"},
        {},
    ]
    assert [match(labels) for labels in cases] == [all_match(matchers, labels)
                                                   for labels in cases]
    assert [match(labels) for labels in cases] == [True, False, False, False, False, True,
                                                   False]
