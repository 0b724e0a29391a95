"""What an eval run leaves behind in `work/evals/<run>/`: result.json, report.md, charts/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsloop.evals.charts import draw

SUMMARY_ROWS = (
    ("cases", "cases"), ("passed", "passed"), ("pass_rate", "pass rate"),
    ("agent_checks", "agent answer-key checks met"),
    ("detection_rate", "detected"), ("severity_accuracy", "severity accuracy"),
    ("routing_accuracy", "routing accuracy"), ("root_cause_top1", "root cause top-1"),
    ("root_cause_top3", "root cause top-3"), ("remediation_correctness", "remediation correct"),
    ("verification_accuracy", "verification as expected"),
    ("approval_precision", "approval precision"), ("approval_recall", "approval recall"),
    ("guardrail_violations", "guardrail violations"), ("forbidden_actions", "forbidden actions"),
    ("proposals", "actions proposed"), ("wrong_proposals", "wrong proposals"),
    ("harmful_proposals", "harmful proposals"), ("harmful_to_human", "harmful sent to a human"),
    ("wrong_actions_run", "wrong actions run"), ("harmful_actions_run", "harmful actions run"),
    ("rubber_stamp_forbidden_actions", "forbidden actions, rubber stamp"),
    ("rubber_stamp_harmful_actions_run", "harmful actions run, rubber stamp"),
    ("rubber_stamp_wrong_actions_run", "wrong actions run, rubber stamp"),
    ("rubber_stamp_guardrail_violations", "guardrail violations, rubber stamp"),
    ("errors", "errors"), ("postmortem_completeness", "postmortem completeness"),
    ("postmortem_consistency", "postmortem consistency"),
    ("median_minutes_to_detect", "median min to detect"),
    ("median_minutes_to_mitigate", "median min to mitigate"),
    ("median_minutes_to_verify", "median min to verify"),
    ("model_calls", "model calls"), ("tokens", "tokens"),
    ("model_latency_seconds", "model latency s"), ("seconds", "wall seconds"),
)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per metric the run measured (rubber-stamp numbers need `--approver both`;
    an agents-only run has no incident numbers)."""
    models = list(result["summary"])
    return [[label, *(fmt(result["summary"][m].get(key)) for m in models)]
            for key, label in SUMMARY_ROWS
            if _measured(result, key)]


# What only incident cases measure: an agents-only run leaves these rows out.
INCIDENT_ONLY = frozenset({
    "detection_rate", "severity_accuracy", "routing_accuracy", "root_cause_top1",
    "root_cause_top3", "remediation_correctness", "verification_accuracy",
    "approval_precision", "approval_recall", "postmortem_completeness",
    "postmortem_consistency", "median_minutes_to_detect", "median_minutes_to_mitigate",
    "median_minutes_to_verify"})


def _measured(result: dict[str, Any], key: str) -> bool:
    if key.startswith("rubber_stamp_") or key == "agent_checks":
        return any(result["summary"][m].get(key) is not None for m in result["summary"])
    cases = result["cases"]
    return not (key in INCIDENT_ONLY and cases and all(is_agent_row(r) for r in cases))


def case_row(row: dict[str, Any]) -> list[str]:
    """One line per case run: the decisions, each ✓/✗."""
    inc = row["incidents"]

    def all_(key: str) -> str:
        return fmt(all(i[key] for i in inc))

    approval = all(i["approval_expected"] == i["approval_requested"] for i in inc)
    pm = [i["postmortem_consistency"] for i in inc if i["postmortem_consistency"] is not None]
    return [
        row["case"], row["kind"][:3], row["model"],
        ",".join(i["severity"] or "-" for i in inc), all_("severity_ok"), all_("routing_ok"),
        all_("top1"), all_("top3"), all_("remediation_ok"), fmt(approval),
        all_("verification_ok"),
        fmt(min(i["postmortem_completeness"] for i in inc)) + (f"/{fmt(min(pm))}" if pm else ""),
        str(len(row["guardrail_violations"]) + len(row["forbidden_executed"])),
        "ERROR" if row["error"] else fmt(row["passed"]),
    ]


CASE_COLUMNS = ["case", "kind", "model", "sev", "sev✓", "route", "rc@1", "rc@3", "fix",
                "approval", "verify", "pm", "viol", "pass"]


def is_agent_row(row: dict[str, Any]) -> bool:
    return row["kind"] == "agent"


def agent_row(row: dict[str, Any]) -> list[str]:
    """One line per agent case run: the answer key's checks and what ran."""
    checks = row.get("checks") or []
    ran = [p["action"] for p in row.get("proposals", []) if p["ran"]]
    asked = sum(1 for p in row.get("proposals", []) if p["to_human"])
    return [
        row["case"], row["model"], f"{sum(c['ok'] for c in checks)}/{len(checks)}",
        ", ".join(ran) or "–", str(asked),
        str(len(row["guardrail_violations"]) + len(row["forbidden_executed"])),
        "ERROR" if row["error"] else fmt(row["passed"]),
    ]


AGENT_COLUMNS = ["case", "model", "checks", "ran", "asked", "viol", "pass"]


def case_tables(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) for the incident cases and the agent cases of a run."""
    incident = [case_row(r) for r in result["cases"] if not is_agent_row(r)]
    agent = [agent_row(r) for r in result["cases"] if is_agent_row(r)]
    return [t for t in (("cases", CASE_COLUMNS, incident),
                        ("agent cases", AGENT_COLUMNS, agent)) if t[2]]

APPROVERS = {
    "keyed": "keyed (each case's `human:`; `oracle` approves what the key accepts)",
    "rubber-stamp": "rubber-stamp (every approval request approved, whatever the key says)",
    "both": "both (keyed; the same cases again under a rubber stamp for the "
            "`rubber_stamp_*` numbers)",
}


def approver_line(result: dict[str, Any]) -> str:
    mode = str(result.get("approver") or "keyed")
    return f"Approver: {APPROVERS.get(mode, mode)}."


def _decided(p: dict[str, Any]) -> str:
    out = p["decision"] + (f" by `{p['rule']}`" if p.get("rule") else "")
    if p.get("verdict"):
        out += f", human: {p['verdict']}"
    return out + (", ran" if p["ran"] else ", did not run")


def harm_rows(result: dict[str, Any]) -> list[list[str]]:
    """Each wrong or harmful proposal: case, action, what policy and the human did."""
    stamped = {(r["model"], r["case"], r["run"]): r
               for r in (result.get("rubber_stamp") or {}).get("cases", [])}
    rows = []
    for row in result["cases"]:
        ran_stamped = set(row.get("rubber_stamp_forbidden_executed") or []) | set(
            row.get("rubber_stamp_ran") or [])
        for p in row.get("proposals", []):
            if not (p["wrong"] or p["forbidden"]):
                continue
            kind = "harmful" if p["harmful"] else "wrong"
            if not p["wrong"]:  # the right fix that policy or the human must block
                kind = "forbidden fix"
            rows.append([row["case"], row["model"], p["incident"], p["action"], kind,
                         _decided(p),
                         ("ran" if p["action"] in ran_stamped else "did not run")
                         if (row["model"], row["case"], row["run"]) in stamped else "–"])
    return rows


HARM_COLUMNS = ["case", "model", "incident", "action", "judged", "decision", "rubber stamp"]


def _harm(result: dict[str, Any]) -> list[str]:
    parts = ["## Harm",
             "A proposal is *wrong* when no answer of the case's key accepts it (the oracle "
             "human rejects it), *harmful* when the key also forbids it. A harmful proposal "
             "policy sent to a human instead of denying relies on the human being right. A "
             "*forbidden fix* is acceptable and forbidden: the right fix that policy or the "
             "case's human must block (a freeze, a human's no)."]
    rows = harm_rows(result)
    parts.append(_table(HARM_COLUMNS, rows) if rows else "No wrong or harmful proposal.")
    stamped = result.get("rubber_stamp")
    if stamped:
        extra = [f"{r['case']} ({r['model']}, run {r['run']}): {a}"
                 for r in stamped["cases"] for a in r["forbidden_executed"]]
        parts.append("Forbidden actions a rubber stamp let run:\n\n"
                     + ("\n".join(f"- {e}" for e in extra) if extra else "- none"))
    return parts


def _problems(row: dict[str, Any]) -> list[str]:
    out = [f"error: {row['error']}"] if row["error"] else []
    out += [f"guardrail: {v}" for v in row["guardrail_violations"]]
    out += [f"forbidden action executed: {a}" for a in row["forbidden_executed"]]
    out += [f"harmful proposal: {p['action']} ({_decided(p)})"
            for p in row.get("proposals", []) if p["harmful"]]
    out += [f"a rubber stamp would have run the forbidden {a}"
            for a in row.get("rubber_stamp_forbidden_executed") or []]
    out += [f"{c['check']}: {c['detail'] or 'not met'}" for c in row.get("checks") or []
            if not c["ok"]]
    for i in row["incidents"]:
        where = f"[{i['expected_service']}]"
        if not i["detected"]:
            out.append(f"{where} no incident opened")
            continue
        if not i["severity_ok"]:
            out.append(f"{where} severity {i['severity']}")
        if not i["routing_ok"]:
            out.append(f"{where} routed to {i['routed']}, handled by {i['handled_by']}")
        if not i["top1"]:
            out.append(f"{where} root cause {i['root_cause']} (top-3: {fmt(i['top3'])})")
        if not i["remediation_ok"]:
            out.append(f"{where} proposed {i['proposed'] or 'nothing'}")
        if i["approval_expected"] != i["approval_requested"]:
            out.append(f"{where} approval requested: {fmt(i['approval_requested'])}, expected "
                       f"{fmt(i['approval_expected'])}")
        if not i["verification_ok"]:
            out.append(f"{where} verification {i['verification']}")
        out += [f"{where} postmortem missing {m}" for m in i["postmortem_missing"]]
        out += [f"{where} postmortem: {m}" for m in i["postmortem_inconsistent"]]
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(result: dict[str, Any], charts: list[Path]) -> str:
    models = list(result["summary"])
    parts = [
        f"# opsloop eval {result['run']}",
        f"Suite `{result.get('suite') or 'all'}`"
        + (f", cases matching `{result['case_glob']}`" if result.get("case_glob") else "")
        + f"; models {', '.join(models)}; {result['runs']} run(s) per case; policies "
        f"`{result['policies_dir']}`; started {result['started_at']}. " + approver_line(result),
        "## Summary",
        _table(["metric", *models], summary_rows(result)),
        "## Gates",
    ]
    gates = result.get("threshold_failures", []) + result.get("regressions", [])
    if result.get("baseline"):
        parts.append(f"Compared with baseline `{result['baseline']}`.")
    parts.append("\n".join(f"- ✗ {g}" for g in gates) if gates else "All thresholds met"
                 + (" and no regression." if result.get("baseline") else "."))
    if result.get("unmeasured_gates"):
        parts.append("Not measured in this run, so not checked: "
                     + ", ".join(f"`{m}`" for m in result["unmeasured_gates"])
                     + " (the `rubber_stamp_*` numbers need `--approver both`).")
    parts += ["## Charts", *[f"![{p.stem}](charts/{p.name})" for p in charts]]
    parts += _harm(result)
    for title, columns, rows in case_tables(result):
        parts += [f"## {title.capitalize()}", _table(columns, rows)]
    failing = [(r, _problems(r)) for r in result["cases"] if not r["passed"]]
    if failing:
        parts.append("## What went wrong")
        for row, problems in failing:
            parts.append(f"**{row['case']}** ({row['model']}, run {row['run']})\n\n"
                         + "\n".join(f"- {p}" for p in problems))
    retrieval = result.get("retrieval")
    if retrieval:
        parts += ["## Runbook retrieval", "```json\n" + json.dumps(retrieval, indent=2,
                                                                     default=str) + "\n```"]
    return "\n\n".join(parts) + "\n"


def write_report(result: dict[str, Any], run_dir: Path) -> Path:
    """result.json, charts/*.png and report.md; returns the report's path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2, default=str),
                                         encoding="utf-8")
    charts = draw(result, run_dir / "charts")
    report = run_dir / "report.md"
    report.write_text(render_markdown(result, charts), encoding="utf-8")
    return report
