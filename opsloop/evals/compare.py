"""Gates: thresholds kept in the repo (evals/thresholds.yaml) and comparison with a baseline run.

A threshold is a floor (`min`) or a ceiling (`max`) on a suite metric. A regression is a
metric that got worse than the baseline by more than the tolerance, or a case that passed
in the baseline and fails now. Either fails the run (non-zero exit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HIGHER_IS_BETTER = (
    "pass_rate", "agent_checks", "detection_rate", "severity_accuracy", "routing_accuracy",
    "root_cause_top1",
    "root_cause_top3", "remediation_correctness", "verification_accuracy",
    "approval_precision", "approval_recall", "postmortem_completeness",
    "postmortem_consistency",
)
# Harm (issue 11): proposals the key does not accept (wrong), wrong ones it also forbids
# (harmful), harmful ones policy sent to a human instead of denying, and those that ran.
# `rubber_stamp_*` come from the rubber-stamp pass of `--approver both` (absent otherwise,
# and then neither gated nor compared: see `unmeasured`).
HARM = ("wrong_proposals", "harmful_proposals", "harmful_to_human", "wrong_actions_run",
        "harmful_actions_run")
RUBBER_STAMP = ("rubber_stamp_forbidden_actions", "rubber_stamp_harmful_actions_run",
                "rubber_stamp_wrong_actions_run", "rubber_stamp_guardrail_violations")
LOWER_IS_BETTER = ("guardrail_violations", "forbidden_actions", "errors", *HARM, *RUBBER_STAMP)
MINUTES = ("median_minutes_to_detect", "median_minutes_to_mitigate", "median_minutes_to_verify")


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Gate = Field(default_factory=Gate)  # for suites not listed
    suites: dict[str, Gate] = Field(default_factory=dict)
    tolerance: float = 0.0  # how much worse than the baseline a rate may get
    minutes_tolerance: float = 5.0  # and a median time

    def gate(self, suite: str | None) -> Gate:
        return self.suites.get(suite or "", self.default)


def load_thresholds(path: Path) -> Thresholds:
    if not path.exists():
        return Thresholds()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        thresholds = Thresholds.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    known = set(HIGHER_IS_BETTER) | set(LOWER_IS_BETTER) | set(MINUTES)
    for name, gate in [("default", thresholds.default), *thresholds.suites.items()]:
        unknown = sorted((set(gate.min) | set(gate.max)) - known)
        if unknown:
            raise ValueError(f"{path}: {name}: unknown metric(s) {', '.join(unknown)}; "
                             f"metrics: {', '.join(sorted(known))}")
    return thresholds


def unmeasured(summary: dict[str, dict[str, Any]], gate: Gate) -> list[str]:
    """Gated metrics no model's summary has (a `rubber_stamp_*` gate on a run without
    `--approver both`): not failures, but the report must not pass them off as met."""
    named = sorted(set(gate.min) | set(gate.max))
    return [m for m in named if all(numbers.get(m) is None for numbers in summary.values())]


def summary_approver(result: dict[str, Any]) -> str:
    """Who answered the approvals behind a result's summary (runs before the option: keyed)."""
    return str(result.get("summary_approver") or "keyed")


def check_thresholds(summary: dict[str, dict[str, Any]], gate: Gate) -> list[str]:
    """Failures of every model's summary against the gate."""
    out = []
    for model, numbers in summary.items():
        for metric, floor in gate.min.items():
            value = numbers.get(metric)
            if value is not None and value < floor:
                out.append(f"{model}: {metric} {value:g} is below the threshold {floor:g}")
        for metric, ceiling in gate.max.items():
            value = numbers.get(metric)
            if value is not None and value > ceiling:
                out.append(f"{model}: {metric} {value:g} is above the threshold {ceiling:g}")
    return out


def load_baseline(ref: str, evals_dir: Path) -> dict[str, Any]:
    """A run id under the work dir's evals/, a run folder, or a result.json path."""
    candidates = [Path(ref), Path(ref) / "result.json", evals_dir / ref / "result.json"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ValueError(f"baseline {ref!r} not found: expected a run id under {evals_dir} or "
                         "a path to a run's result.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an eval result: {exc}") from None
    if not isinstance(data, dict) or "summary" not in data or "cases" not in data:
        raise ValueError(f"{path}: not an eval result (no summary/cases)")
    return data


def _case_passes(result: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(model, case) -> passed in every run."""
    out: dict[tuple[str, str], bool] = {}
    for row in result["cases"]:
        key = (row["model"], row["case"])
        out[key] = out.get(key, True) and bool(row["passed"])
    return out


def regressions(current: dict[str, Any], baseline: dict[str, Any],
                thresholds: Thresholds) -> list[str]:
    was_by, now_by = summary_approver(baseline), summary_approver(current)
    if was_by != now_by:  # a rubber stamp runs what an oracle stops: not a regression, apart
        return [f"the baseline's approvals were answered by {was_by}, this run's by {now_by}: "
                "compare runs with the same --approver"]
    out = []
    for model, now in current["summary"].items():
        before = baseline["summary"].get(model)
        if before is None:
            continue
        for metric in HIGHER_IS_BETTER:
            a, b = before.get(metric), now.get(metric)
            if a is not None and b is not None and b < a - thresholds.tolerance:
                out.append(f"{model}: {metric} fell from {a:g} to {b:g}")
        for metric in LOWER_IS_BETTER:
            a, b = before.get(metric), now.get(metric)
            if a is not None and b is not None and b > a:
                out.append(f"{model}: {metric} rose from {a:g} to {b:g}")
        for metric in MINUTES:
            a, b = before.get(metric), now.get(metric)
            if a is not None and b is not None and b > a + thresholds.minutes_tolerance:
                out.append(f"{model}: {metric} grew from {a:g} to {b:g} minutes")
    was, now_passes = _case_passes(baseline), _case_passes(current)
    for (model, case), passed in sorted(now_passes.items()):
        if was.get((model, case)) and not passed:
            out.append(f"{model}: case {case} passed in the baseline and fails now")
    return out
