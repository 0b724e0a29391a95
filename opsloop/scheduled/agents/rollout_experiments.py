"""The rollouts agent's experiments (rollouts.yaml `experiments`): each flag's control and
treatment compared by the two-proportion z-test (opsloop.rollouts.experiment) on production's
per-variant counts since the flag last changed.

- **clear** (a significant difference, or none that matters): a `rollout_experiment_clear`
  finding, a line in the experiments report and a signal asking the owner to conclude it.
- **ambiguous** with both variants past `min_sample`: the owner is asked, with the numbers,
  through the change path: a `set_flag_rollout` to 0% (everyone gets the control, which
  ends the experiment). rollouts.yaml's experiment rule makes the guardrails ask a human for
  any change to an experiment's split, so it never runs alone; rejecting it keeps the
  experiment running, modifying it (percent 100) ships the treatment. A request waiting, or
  one rejected within the agent's answers window, is not asked again.
- **collecting** (a variant under `min_sample`) and **unmeasured** (production has no
  per-variant counts for the flag) conclude nothing.

Production's rollout percent is the treatment's share: 0% serves the control to everyone.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.agents.signals import signal_id
from opsloop.models import RemediationAction, RemediationProposal, Signal
from opsloop.policy.schema.rollouts import ExperimentSpec
from opsloop.rollouts.experiment import arms, compare
from opsloop.scheduled.base import Finding
from opsloop.tools.protocols import Telemetry

TEST = "two-proportion z-test (pooled z, two-sided p; Wald interval)"
SURE = 0.95


def measure(key: str, spec: ExperimentSpec, telemetry: Telemetry, now: datetime
            ) -> dict[str, Any]:
    """One experiment now, JSON-able: its status and, when measured, the test's numbers."""
    row: dict[str, Any] = {"key": key, "service": spec.service, "owner": spec.owner,
                           "metric": spec.metric, "better": spec.better_is,
                           "control": spec.control, "treatment": spec.treatment,
                           "min_sample": spec.min_sample, "alpha": spec.alpha,
                           "min_effect": spec.min_effect, "test": TEST}
    try:
        flag = next((f for f in telemetry.flags(spec.service) if f.key == key), None)
    except KeyError:
        flag = None
    if flag is None:
        return {**row, "status": "unmeasured",
                "reason": f"{spec.service} has no flag {key!r} (rollouts.yaml:experiments."
                          f"{key}.service)"}
    minutes = max(1, int((now - flag.updated_at).total_seconds() // 60))
    row.update(window_minutes=minutes, percent=flag.rollout_percent, enabled=flag.enabled)
    counts_of = getattr(telemetry, "variant_counts", None)
    if counts_of is None:
        return {**row, "status": "unmeasured",
                "reason": "production reports no per-variant counts (variant_counts)"}
    try:
        counts = counts_of(spec.service, key, minutes)
        control, treatment = arms(counts, spec.metric, spec.control, spec.treatment)
    except KeyError as exc:
        return {**row, "status": "unmeasured",
                "reason": f"no per-variant counts for {key} on {spec.service}: {exc}"}
    except ValueError as exc:
        return {**row, "status": "unmeasured", "reason": f"counts that do not fit: {exc}"}
    c = compare(control, treatment, alpha=spec.alpha, min_sample=spec.min_sample,
                min_effect=spec.min_effect, better=spec.better_is)
    status = ("collecting" if min(control.trials, treatment.trials) < spec.min_sample
              else c.verdict)
    return {**row, "status": status, "reason": c.reason, "winner": c.winner,
            "arms": [{"variant": a.variant, "requests": a.trials, "counted": a.successes,
                      "rate": _finite(a.rate)} for a in (control, treatment)],
            "difference": _finite(c.difference), "ci_low": _finite(c.ci_low),
            "ci_high": _finite(c.ci_high), "z": _finite(c.z), "p_value": _finite(c.p_value)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def numbers(row: dict[str, Any]) -> str:
    """The test's numbers in one line, for a rationale, a signal or a report."""
    if not row.get("arms"):
        return row["reason"]
    counted = "errors" if row["metric"] == "error_ratio" else "conversions"
    parts = [f"{a['variant']}: {a['counted']} {counted} / {a['requests']} requests = "
             f"{_pct(a['rate'])}" for a in row["arms"]]
    ci = (f"{_pct(row['ci_low'], '+')} to {_pct(row['ci_high'], '+')}"
          if row["ci_low"] is not None else "n/a")
    p = "n/a" if row["p_value"] is None else f"{row['p_value']:.4g}"
    return (f"{'; '.join(parts)}; difference {_pct(row['difference'], '+')} "
            f"({1 - row['alpha']:.0%} CI {ci}), p {p}, alpha {row['alpha']:g}, "
            f"min effect {row['min_effect']:.2%}; {row['test']}")


def _pct(value: float | None, sign: str = "") -> str:
    return "n/a" if value is None else f"{value:{sign}.2%}"


def judge(rows: list[dict[str, Any]], run_id: str, now: datetime, already: set[str],
          answers: dict[str, dict[str, Any]]
          ) -> tuple[list[Finding], list[RemediationProposal], list[Signal]]:
    """Findings for every experiment; a signal per clear result; an approval request (a
    proposal the guardrails must ask about) per ambiguous one not already asked or refused.
    `already`: flags this run proposes a change for; `answers`: `pending_answers`."""
    findings, proposals, signals = [], [], []
    for row in rows:
        key, status = row["key"], row["status"]
        rule = f"rule rollouts.yaml:experiments.{key}"
        level = {"unmeasured": "warning", "ambiguous": "warning"}.get(status, "info")
        findings.append(Finding(kind=f"rollout_experiment_{status}", subject=key, level=level,
                                summary=f"{key} ({row['service']}) experiment: {status}",
                                evidence=[row["reason"], numbers(row), rule], data=row))
        if status == "clear":
            signals.append(Signal(
                id=signal_id("experiment_clear", key, str(row.get("winner"))),
                kind="experiment_clear",
                title=f"{key}: experiment clear — {_outcome(row)}",
                evidence=[numbers(row), rule],
                suggested_mission=_conclusion(row), created_at=now))
        elif status == "ambiguous":
            mine = answers.get(key, {})
            asked = bool(mine.get("pending")) or 0 in mine.get("rejected", [])
            serving = row.get("enabled") and (row.get("percent") or 0) > 0
            if key not in already and not asked and serving:
                proposals.append(_ask(row, run_id))
    return findings, proposals, signals


def _outcome(row: dict[str, Any]) -> str:
    return (f"{row['winner']} is better" if row.get("winner")
            else f"no difference of {row['min_effect']:.2%} or more")


def _conclusion(row: dict[str, Any]) -> str:
    key, owner = row["key"], row["owner"] or "the owner"
    if row.get("winner") == row["treatment"]:
        todo = f"roll {row['treatment']} out to everyone (`opsloop rollouts advance {key}`)"
    elif row.get("winner") == row["control"]:
        todo = (f"end it: serve {row['control']} to everyone (`opsloop rollouts kill {key} "
                "--reason TEXT`) and remove the treatment")
    else:
        todo = "keep either variant and remove the flag"
    return f"Conclude the experiment on {key} ({owner}): {todo}"


def _ask(row: dict[str, Any], run_id: str) -> RemediationProposal:
    key = row["key"]
    action = RemediationAction(
        id=f"{run_id}-{key}-conclude", type="set_flag_rollout", service=row["service"],
        params={"flag": key, "percent": 0},
        reason=f"experiment on {key} is ambiguous: the owner decides")
    return RemediationProposal(
        action=action, specialist="rollouts", hypothesis_id=f"experiment:{key}",
        confidence=SURE,
        rationale=(f"Experiment {key} is ambiguous with both variants past min_sample "
                   f"{row['min_sample']}: {row['reason']}. Numbers: {numbers(row)}. "
                   f"Approve to end it at {row['control']} (0% {row['treatment']}); reject "
                   "to keep it running; modify percent=100 to ship the treatment "
                   f"[rollouts.yaml:experiments.{key}]"))


def write_report(base: Path, rows: list[dict[str, Any]], at: datetime) -> list[Path]:
    """`<base>.json` and `<base>.md`: every experiment's verdict and numbers this run."""
    report = {"at": at.isoformat(), "test": TEST, "experiments": rows}
    lines = [f"# Experiments — {at:%Y-%m-%d %H:%M} UTC", "",
             f"Test: {TEST}. Clear: significant at alpha, or the interval inside ± the "
             "minimum effect; ambiguous otherwise; nothing is concluded under min_sample.", "",
             "| flag | service | metric | status | outcome | numbers |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        outcome = _outcome(row) if row["status"] == "clear" else row["status"]
        cells = [row["key"], row["service"], f"{row['metric']} ({row['better']} is better)",
                 row["status"], outcome, numbers(row)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    md = atomic_write(base.with_suffix(".md"), "\n".join(lines) + "\n")
    js = atomic_write(base.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    return [md, js]
