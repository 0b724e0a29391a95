"""Loading policies: the shipped files load; every broken file says file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_policy_support import POLICIES_DIR, copy_policies, edit

from opsloop.models import Impact
from opsloop.policy import PolicyError, PolicyProblem, ProblemLevel, check_policies, load_policies
from opsloop.policy.schema import POLICY_FILES, Condition


def errors(directory: Path) -> list[PolicyProblem]:
    return [p for p in check_policies(directory) if p.level is ProblemLevel.ERROR]


def only_error(directory: Path) -> PolicyProblem:
    found = errors(directory)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_every_shipped_policy_file_loads_without_problems() -> None:
    assert check_policies(POLICIES_DIR) == []
    policies = load_policies(POLICIES_DIR)
    assert policies.source_dir == POLICIES_DIR
    assert [w.long for w in policies.health.burn_rate_windows] == [60, 360, 3 * 24 * 60]
    assert {f for f in POLICY_FILES} == {p.name for p in POLICIES_DIR.glob("*.yaml")}


def test_every_shipped_policy_file_declares_version_1() -> None:
    for path in POLICIES_DIR.glob("*.yaml"):
        assert "\nversion: 1\n" in path.read_text(), path.name


def test_yaml_syntax_error_names_the_line_and_column(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "severity.yaml", "  default: 3\n", "  default: [3\n")
    problem = only_error(d)
    assert problem.file.endswith("severity.yaml")
    assert problem.line is not None and problem.line > 1
    assert "YAML syntax error at line" in problem.message
    assert "column" in problem.message


def test_unknown_field_is_an_error_listing_the_allowed_fields(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(
        d,
        "remediation.yaml",
        "  max_auto_per_incident: 5\n",
        "  max_auto_per_incident: 5\n  max_auto_per_day: 9\n",
    )
    problem = only_error(d)
    assert problem.field == "rate_limits.max_auto_per_day"
    assert problem.value == 9
    assert "unknown field" in problem.message
    assert "max_auto_per_service_per_hour" in problem.message


def test_wrong_type_names_file_field_and_value_on_one_line(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "severity.yaml", "error_ratio_gte: 0.03}", "error_ratio_gte: abc}")
    problem = only_error(d)
    assert problem.field == "rules[2].when.error_ratio_gte"
    assert problem.value == "abc"
    text = str(problem)
    assert "\n" not in text
    assert text.endswith(
        "severity.yaml:"
        + str(problem.line)
        + ": rules[2].when.error_ratio_gte = 'abc': not a number"
    )


def test_problem_string_reads_like_the_documented_example() -> None:
    problem = PolicyProblem(
        "policies/severity.yaml", "rules[2].when.error_ratio_gte", "not a number", value="abc"
    )
    expected = "policies/severity.yaml: rules[2].when.error_ratio_gte = 'abc': not a number"
    assert str(problem) == expected


def test_missing_file_is_named(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    (d / "rollback.yaml").unlink()
    problem = only_error(d)
    assert problem.file.endswith("rollback.yaml")
    assert "file missing" in problem.message
    with pytest.raises(PolicyError, match=r"rollback\.yaml"):
        load_policies(d)


def test_missing_directory_is_one_clear_problem(tmp_path: Path) -> None:
    problem = only_error(tmp_path / "nowhere")
    assert "policy directory not found" in problem.message


def test_alert_rule_without_runbook_or_action_is_an_error_naming_the_rule(
    tmp_path: Path,
) -> None:
    d = copy_policies(tmp_path)
    edit(d, "alerts.yaml", "      runbook: disk-filling\n", "")
    problem = only_error(d)
    assert problem.field == "rules[3].annotations"
    assert problem.line is not None
    assert "'DiskFilling'" in problem.message
    assert "runbook" in problem.message and "action" in problem.message


def test_alert_rule_with_an_action_instead_of_a_runbook_passes(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(
        d,
        "alerts.yaml",
        "      runbook: disk-filling\n",
        "      action: purge rotated logs, then find what writes so much\n",
    )
    assert errors(d) == []


def test_severity_rule_on_an_unknown_field_is_an_error(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(
        d,
        "severity.yaml",
        "{tier_lte: 1, error_ratio_gte: 0.2}",
        "{tier_lte: 1, error_rate_gte: 0.2}",
    )
    problem = only_error(d)
    assert problem.field == "rules[0].when.error_rate_gte"
    assert problem.value == 0.2
    assert "error_ratio_gte" in problem.message  # the allowed keys are listed


def test_objective_above_one_is_an_error_with_its_value(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "    objective: 0.999\n", "    objective: 1.5\n")
    problem = only_error(d)
    assert problem.field == "slos[0].objective"
    assert problem.value == 1.5
    assert "less than 1" in problem.message


def test_percent_written_as_a_whole_number_is_caught(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(
        d,
        "severity.yaml",
        "{tier_lte: 1, error_ratio_gte: 0.2}",
        "{tier_lte: 1, error_ratio_gte: 20}",
    )
    problem = only_error(d)
    assert problem.field == "rules[0].when.error_ratio_gte"
    assert "fraction" in problem.message


def test_duplicate_keys_are_reported_instead_of_silently_overwritten(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(
        d,
        "intake.yaml",
        "group_wait_minutes: 1\n",
        "group_wait_minutes: 1\ngroup_wait_minutes: 3\n",
    )
    problem = only_error(d)
    assert problem.field == "group_wait_minutes"
    assert "twice" in problem.message


def test_bad_duration_says_how_to_write_one(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "{long: 1h, short: 5m,", "{long: 1 hour, short: 5m,")
    problem = only_error(d)
    assert problem.field == "burn_rate_windows[0].long"
    assert "5m, 1h, 28d" in problem.message


def test_short_window_must_be_shorter_than_long(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "{long: 1h, short: 5m,", "{long: 1h, short: 2h,")
    problem = only_error(d)
    assert problem.field == "burn_rate_windows[0]"
    assert "shorter" in problem.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "    objective: 0.999\n", "    objective: 1.5\n")
    edit(d, "capacity.yaml", "max_scale_step: 12", "max_scale_step: many")
    (d / "intake.yaml").unlink()
    files = sorted(Path(p.file).name for p in errors(d))
    assert files == ["capacity.yaml", "health.yaml", "intake.yaml"]
    with pytest.raises(PolicyError) as caught:
        load_policies(d)
    assert len(caught.value.problems) == 3


def test_an_allowed_action_the_actuator_cannot_do_is_a_warning(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "remediation.yaml", "  purge_logs:\n", "  deploy:\n    risk: adds\n  purge_logs:\n")
    problems = check_policies(d)
    assert [p.field for p in problems] == ["actions.deploy"]
    assert problems[0].level is ProblemLevel.WARNING
    load_policies(d)  # warnings do not stop loading


def test_slo_for_a_service_without_a_tier_is_a_warning(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "    service: web\n", "    service: webb\n")
    problems = check_policies(d)
    assert [(p.field, p.value, p.level) for p in problems] == [
        ("slos[0].service", "webb", ProblemLevel.WARNING)
    ]


def test_severity_conditions_only_name_impact_fields() -> None:
    # Guards drift between the Impact model and the condition keys operators may write.
    impact_fields = set(Impact.model_fields)
    for key in Condition.model_fields:
        if key != "services_any":
            assert key.rpartition("_")[0] in impact_fields, key


def test_one_broken_file_does_not_hide_another_files_quality_problem(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "alerts.yaml", "      runbook: disk-filling\n", "")
    edit(d, "intake.yaml", "group_wait_minutes: 1", "group_wait_minutes: [1")
    assert sorted(Path(p.file).name for p in errors(d)) == ["alerts.yaml", "intake.yaml"]
