"""Runbook update proposals: what a novel incident taught, drafted for a human to merge.

An incident is novel when retrieval finds no runbook above the no-match threshold, or when
no runbook hypothesis was supported by the evidence. Either way the next on-call engineer
deserves a runbook, so one is drafted in work/runbook-proposals/ from the record: the
symptoms that fired, what was checked and what it showed, and what fixed it (or that
nothing automatic did). It is a draft: a person reviews it, fills the gaps and merges it
into a runbook folder, where it indexes like any other runbook.
"""

from __future__ import annotations

import re
from pathlib import Path

from opsloop.agents.markdown import atomic_write, front_matter
from opsloop.agents.reasoner import incident_query
from opsloop.models import Incident
from opsloop.tools.protocols import RunbookHit, RunbookIndex


def retrieval_verdict(incident: Incident, index: RunbookIndex) -> tuple[bool, list[RunbookHit]]:
    """(no runbook fits, the best hits) for the incident's whole-alert query."""
    hits = index.search(incident_query(incident), k=3)
    return (not hits or not hits[0].confident), hits


def draft_runbook_proposal(incident: Incident, index: RunbookIndex, out_dir: Path) -> Path | None:
    """Write a proposal when the incident was novel; None when a runbook already covers it."""
    no_match, hits = retrieval_verdict(incident, index)
    if not (incident.novel or no_match):
        return None
    return atomic_write(out_dir / f"{incident.id}.md", render_proposal(incident, hits, no_match))


def _proposed_id(incident: Incident) -> str:
    names = sorted({a.name for a in incident.anomalies}) or ["incident"]
    raw = "-".join([*names, *incident.services[:1]])
    return re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:60] or "proposed-runbook"


def render_proposal(incident: Incident, hits: list[RunbookHit], no_match: bool) -> str:
    alerts = sorted({a.name for a in incident.anomalies})
    symptoms = [s for a in incident.anomalies
                for s in (a.annotations.get("summary"), a.annotations.get("description")) if s]
    meta = {"title": f"{' + '.join(alerts) or incident.title} on "
                     f"{', '.join(incident.services) or 'unknown services'}",
            "alerts": alerts, "services": incident.services or ["*"],
            "symptoms": list(dict.fromkeys(symptoms)),
            "id": _proposed_id(incident), "proposed_from": incident.id,
            "status": "draft — review before merging into a runbook folder"}
    out = [front_matter(meta).rstrip("\n"), f"# {meta['title']}", "", "## Meaning"]
    for a in incident.anomalies:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "alertname")
        out.append(f"- `{a.name}` ({labels}): {a.annotations.get('summary', '')}")
    out += ["", "## Impact", _impact(incident), "", "## Diagnosis"]
    out += _diagnosis(incident) or ["No checks ran: no runbook offered any for these alerts."]
    out += ["", "## Mitigation", *_mitigation(incident), "", "## Why this proposal"]
    if no_match:
        best = ", ".join(f"{h.runbook_id} ({h.score:.2f})" for h in hits) or "none"
        out.append(f"Runbook search found no good match for these alerts (best: {best}).")
    if incident.novel:
        out.append("No runbook hypothesis was supported by the evidence "
                   "(the incident was escalated as a novel failure).")
    out.append("Review it: correct the diagnosis, name the fix, then merge it into a runbook "
               "folder (opsloop indexes it on the next start or `opsloop index`).")
    return "\n".join(out) + "\n"


def _impact(incident: Incident) -> str:
    sev = incident.severity.value if incident.severity else "unknown severity"
    impact = incident.impact
    if impact is None:
        return f"{sev}; no impact was measured."
    return (f"{sev}: services {', '.join(impact.services) or '-'} (tier {impact.tier}), "
            f"error ratio {impact.error_ratio:.1%}, saturation {impact.saturation:.0%}, "
            f"blast radius {impact.blast_radius} service(s), error budget left "
            f"{impact.error_budget_remaining:.0%}.")


def _diagnosis(incident: Incident) -> list[str]:
    lines: list[str] = []
    for d in incident.diagnoses:
        for h in d.hypotheses[:3]:
            lines.append(f"- {d.specialist}: ruled out or unconfirmed — {h.cause} "
                         f"({h.confidence:.0%}, runbook {h.runbook})")
            for e in h.evidence:
                verdict = "holds" if e.holds else "no data" if e.holds is None else "does not hold"
                lines.append(f"  - {e.description or e.check}: {e.observed} ({verdict})")
    return lines


def _mitigation(incident: Incident) -> list[str]:
    done = [f"- {r.action}: {r.status.value}" + (f" ({r.detail})" if r.detail else "")
            for r in (c.result for c in incident.actions) if r is not None]
    if incident.verification is not None:
        done.append(f"- verification {'passed' if incident.verification.passed else 'failed'} "
                    f"after {incident.verification.window_minutes} minutes")
    done += [f"- a human {a.verdict.value}d {a.request_id}: {a.reason}"
             for a in (c.approval for c in incident.actions) if a is not None and a.reason]
    return done or ["Nothing automatic fixed it: write down what the on-call engineer did."]
