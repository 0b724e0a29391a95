"""Alert quality, daily: "no alert without a clear action" checked against what happened.

Reads the incidents of the review window (alerts.yaml `quality.review_window`) and, per alert
(name and service), counts how often it fired, how often anything was done about it (an
action ran, or a person decided), and how often it ended with nobody acting. Two findings,
each filed as an improvement signal with its evidence:

- `alert_without_action`: it fired, never led to an action, and names no runbook;
- `noisy_alert`: it fired at least `noisy_min_firings` times and at least `noisy_share` of
  those ended with nobody acting (a page that teaches people to ignore pages).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.agents.signals import signal_id, write_signals
from opsloop.models import ActionStatus, AnomalyStatus, Incident, Signal
from opsloop.scheduled.base import AgentContext, Analysis, Finding


class AlertQuality:
    name = "alert-quality"
    purpose = ("Find alerts that fire without leading to action, and noisy alerts that "
               "resolve with nobody acting; file them as signals with evidence.")
    tools = ("incident_history",)

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        quality = ctx.policies.alerts.quality
        since = ctx.now - timedelta(minutes=quality.review_window)
        firings: list[dict[str, Any]] = []
        for incident in ctx.store.incidents(since=since):
            if incident.opened_at < since or not incident.anomalies:
                continue  # change records from agents carry no alerts
            firings.extend(_firings(incident))
        return {"since": since.isoformat(), "firings": firings}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        quality = ctx.policies.alerts.quality
        by_alert: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for firing in observed.get("firings", []):
            by_alert[(firing["alert"], firing["service"])].append(firing)
        rows = [_row(alert, service, fired) for (alert, service), fired in
                sorted(by_alert.items())]
        findings: list[Finding] = []
        signals: list[Signal] = []
        for row in rows:
            evidence = [f"{f['incident']} ({f['status']}, opened {f['opened_at'][:16]}): "
                        f"{'acted' if f['acted'] else 'nobody acted'}"
                        for f in row["firings"]][:10]
            subject = f"{row['alert']} on {row['service']}"
            if row["acted"] == 0 and not row["runbooks"]:
                findings.append(Finding(
                    kind="alert_without_action", subject=subject, level="warning",
                    summary=(f"{subject} fired {row['fired']} time(s) in the window, never led "
                             f"to an action and names no runbook"),
                    evidence=evidence, data=row))
            share = row["unacted"] / row["fired"]
            if row["fired"] >= quality.noisy_min_firings and share >= quality.noisy_share:
                findings.append(Finding(
                    kind="noisy_alert", subject=subject, level="warning",
                    summary=(f"{subject} fired {row['fired']} times; {row['unacted']} "
                             f"({share:.0%}) ended with nobody acting"),
                    evidence=evidence, data=row))
        for finding in findings:
            alert, _, service = finding.subject.partition(" on ")
            signals.append(Signal(
                id=signal_id(finding.kind, alert, service), kind=finding.kind,
                title=finding.summary, evidence=finding.evidence,
                suggested_mission=_mission(finding.kind, alert, service),
                incidents=sorted({f["incident"] for f in finding.data["firings"]}),
                created_at=ctx.now))
        written = write_signals(signals, ctx.signals_dir) if signals else []
        reports = _report(ctx, observed, rows, findings)
        summary = (f"{len(rows)} alert(s) fired since {observed.get('since', '')[:10]}; "
                   f"{sum(f.kind == 'alert_without_action' for f in findings)} without action, "
                   f"{sum(f.kind == 'noisy_alert' for f in findings)} noisy")
        return Analysis(summary=summary, findings=findings, reports=reports,
                        signals=[str(p) for p in written])


def _firings(incident: Incident) -> list[dict[str, Any]]:
    acted = any(case.result is not None and case.result.status is ActionStatus.SUCCEEDED
                for case in incident.actions) or any(
        case.approval is not None for case in incident.actions)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for anomaly in incident.anomalies:
        key = (anomaly.name, anomaly.service or "-")
        runbook = anomaly.annotations.get("runbook", "")
        resolved = anomaly.status is AnomalyStatus.RESOLVED or anomaly.ends_at is not None
        earlier = seen.get(key)
        if earlier is not None:
            earlier["resolved"] = earlier["resolved"] and resolved
            continue
        seen[key] = {"alert": key[0], "service": key[1], "incident": incident.id,
                     "status": incident.status.value, "opened_at": incident.opened_at.isoformat(),
                     "acted": acted, "resolved": resolved, "runbook": runbook,
                     "root_cause_runbook": incident.root_cause.runbook
                     if incident.root_cause is not None else ""}
    return list(seen.values())


def _row(alert: str, service: str, fired: list[dict[str, Any]]) -> dict[str, Any]:
    runbooks = sorted({f["runbook"] for f in fired if f["runbook"]}
                      | {f["root_cause_runbook"] for f in fired if f["root_cause_runbook"]})
    acted = sum(1 for f in fired if f["acted"])
    return {"alert": alert, "service": service, "fired": len(fired), "acted": acted,
            "unacted": len(fired) - acted,
            "self_resolved": sum(1 for f in fired if not f["acted"] and f["resolved"]),
            "runbooks": runbooks, "firings": fired}


def _mission(kind: str, alert: str, service: str) -> str:
    if kind == "noisy_alert":
        return (f"Make {alert} on {service} page only when someone must act: tune its "
                f"condition or `for`, demote it to a ticket, or automate the response.")
    return (f"Give {alert} on {service} a clear response: a runbook or an action, or "
            f"remove the alert.")


def _report(ctx: AgentContext, observed: dict[str, Any], rows: list[dict[str, Any]],
            findings: list[Finding]) -> list[str]:
    day = ctx.due_at.date().isoformat()
    base = ctx.reports_dir / f"alert-quality-{day}"
    lines = [f"# Alert quality, {day}", "",
             f"Alerts that fired since {observed.get('since', '')[:16]} and what came of them.",
             "", "| alert | service | fired | acted | nobody acted | resolved on its own "
             "| runbook |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['alert']} | {r['service']} | {r['fired']} | {r['acted']} | "
                     f"{r['unacted']} | {r['self_resolved']} | "
                     f"{', '.join(r['runbooks']) or '—'} |")
    if not rows:
        lines.append("| — | — | 0 | 0 | 0 | 0 | — |")
    lines += ["", "## Findings", ""]
    lines += [f"- **{f.kind}** — {f.summary}" for f in findings] or ["- none"]
    md = atomic_write(base.with_suffix(".md"), "\n".join(lines) + "\n")
    data = {"since": observed.get("since"), "rows": [
        {k: v for k, v in r.items() if k != "firings"} for r in rows],
        "findings": [f.model_dump(mode="json", exclude={"data"}) for f in findings]}
    js = atomic_write(base.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    return [str(md), str(js)]
