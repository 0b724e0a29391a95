"""What a reader of the signals must see: each incident once, patterns of one cause, no
experiment counted as a failure, and thresholds that policies/signals.yaml sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_policy_support import copy_policies, edit
from test_signals import NOW, incident, kinds, only

from opsloop.agents.signals import (
    DEFAULT_RULES,
    derive_signals,
    read_record,
    render_record,
    write_signals,
)
from opsloop.models import IncidentStatus
from opsloop.policy.loader import load_policies
from opsloop.policy.problems import PolicyError


def test_unrelated_causes_on_one_service_are_not_one_pattern() -> None:
    history = [incident(1, category="bad_deploy", action=None),
               incident(2, category="dependency_outage", action=None)]
    current = incident(3, category="flag_rollout", action=None)
    assert "repeated_incidents" not in kinds(derive_signals(current, history, NOW))
    history.append(incident(4, category="flag_rollout", action=None))
    history.append(incident(5, category="flag_rollout", action=None))
    signal = only(derive_signals(current, history, NOW), "repeated_incidents")
    assert signal.incidents == ["INC-3", "INC-4", "INC-5"]
    assert signal.title == "checkout had 3 incidents from flag_rollout in 30 days"


def test_an_incident_is_one_line_of_evidence_whatever_statuses_it_passed(
        tmp_path: Path) -> None:
    waiting = incident(3, status=IncidentStatus.AWAITING_APPROVAL)
    history = [incident(1, days_ago=4), incident(2, days_ago=2)]
    write_signals(derive_signals(waiting, history, NOW), tmp_path)
    done = incident(3)  # the same incident, mitigated once a person approved
    [path] = write_signals([only(derive_signals(done, history, NOW), "repeated_incidents")],
                           tmp_path)
    record = read_record(path)
    assert record.incidents == ["INC-1", "INC-2", "INC-3"]
    about_3 = [e for e in record.evidence if e.startswith("INC-3 ")]
    assert len(about_3) == 1 and "mitigated" in about_3[0], record.evidence
    assert len(record.evidence) == 3


def test_a_deliberate_chaos_experiment_never_counts_as_an_incident() -> None:
    experiment = incident(1, category="chaos_experiment", action="abort_experiment")
    history = [experiment, incident(2, category="chaos_experiment", action="abort_experiment")]
    # Three experiments on one service: not a reliability problem of that service.
    third = incident(3, category="chaos_experiment", action="abort_experiment")
    assert derive_signals(third, history, NOW) == []
    # Two real failures beside an experiment are two, not three.
    real = [incident(4, category=None, action="restart"), experiment]
    current = incident(5, category=None, action="restart")
    found = derive_signals(current, real, NOW)
    assert all("INC-1" not in s.incidents for s in found)
    assert "repeated_incidents" not in kinds(found)


def test_thresholds_come_from_policies_signals_yaml(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path)
    assert load_policies(folder).signals == DEFAULT_RULES.model_copy(
        update={"version": 1})  # the shipped file says what the defaults are
    edit(folder, "signals.yaml", "repeated_incidents: 3", "repeated_incidents: 2")
    edit(folder, "signals.yaml", "deliberate_causes: [chaos_experiment]",
         "deliberate_causes: [chaos_experiment, game_day]")
    rules = load_policies(folder).signals
    assert rules.repeated_incidents == 2 and "game_day" in rules.deliberate_causes
    two = derive_signals(incident(2), [incident(1, days_ago=3)], NOW, rules)
    assert only(two, "repeated_incidents").incidents == ["INC-1", "INC-2"]


def test_a_bad_threshold_names_the_file_the_field_and_the_value(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path)
    edit(folder, "signals.yaml", "  rejections: 2", "  rejections: 0")
    with pytest.raises(PolicyError) as raised:
        load_policies(folder)
    [problem] = [p for p in raised.value.problems if p.file.endswith("signals.yaml")]
    assert problem.file.endswith("signals.yaml") and problem.field == "approvals.rejections"
    assert problem.line is not None and "0" in str(problem)


def test_a_file_from_before_lists_each_incident_once_when_read(tmp_path: Path) -> None:
    signal = only(derive_signals(incident(3), [incident(1, days_ago=4), incident(2)], NOW),
                  "repeated_incidents")
    first = signal.evidence[0]
    waiting = first.replace("mitigated", "awaiting_approval")
    # As learn wrote it before: one line per status the incident passed through.
    old = signal.model_copy(update={"evidence": [waiting, *signal.evidence, "a note"]})
    path = tmp_path / "old.md"
    path.write_text(render_record(old), encoding="utf-8")
    record = read_record(path)
    assert record.evidence == [first, *signal.evidence[1:], "a note"]
