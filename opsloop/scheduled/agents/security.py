"""The security agent: findings filed in the inbox (`opsloop vulns ingest`) against what each
service runs (the SBOM production publishes for its running release).

Per service (opsloop.scheduled.agents.security_plan decides): a finding that applies is
triaged by severity.yaml `vulnerabilities`; the most severe one either has a published
release that no longer carries it — a `deploy_version` proposal, sent down the incidents'
own change path (guardrails, approval at SEV1, act, verify by rescan and health, rollback on
failure, postmortem for SEV1-2) — or has none, and people are told how to mitigate until
one exists. Findings that do not apply are written as OpenVEX `not_affected` statements
(work/security/vex.json). The change record takes the most severe patch's severity when that
is stricter than schedule.yaml's for this agent, never a milder one.
"""

from __future__ import annotations

import json
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.agents.signals import signal_id, write_signals
from opsloop.models import RemediationAction, RemediationProposal, Severity, Signal
from opsloop.scheduled.agents.security_plan import ServicePlan, Triaged, plan_service, triage
from opsloop.scheduled.base import AgentContext, Analysis, Finding
from opsloop.security.finding import Finding as VulnFinding
from opsloop.security.inbox import read_inbox, vex_path
from opsloop.security.matching import Assessment, Justification, assess, assess_all
from opsloop.security.sbom import Inventory, SbomError, read_sbom
from opsloop.security.versions import compare
from opsloop.security.vex import document

NAME = "security"
SURE = 0.95  # a rescan decides whether the release clears the finding, not a guess
_LEVEL = {Severity.SEV1: "critical", Severity.SEV2: "critical", Severity.SEV3: "warning"}


class Security:
    name = NAME
    purpose = ("Vulnerability findings (Trivy, Grype, OSV, CISA KEV) against each service's "
               "SBOM: patch by deploying a release without the finding, mitigate when none "
               "exists, and record OpenVEX for what does not apply.")
    tools = ("findings_inbox", "sbom", "releases")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        intake = read_inbox(ctx.settings.state_dir)
        running: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        for info in ctx.telemetry.services():
            try:
                running[info.name] = ctx.telemetry.sbom(info.name)
            except KeyError as exc:
                unavailable[info.name] = str(exc.args[0]) if exc.args else "no SBOM"
        newer: dict[str, dict[str, Any]] = {}
        for service, doc in running.items():
            current = _inventory(service, doc)
            if current is None or not any(assess(f, current).affected for f in intake.findings):
                continue
            newer[service] = {v: ctx.telemetry.sbom(service, v)
                              for v in ctx.telemetry.releases(service)
                              if compare(v, current.version) > 0}
        return {"findings": [f.model_dump(mode="json") for f in intake.findings],
                "problems": [str(p) for p in intake.problems],
                "running": running, "newer": newer, "unavailable": unavailable}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        policy = ctx.policies.severity.vulnerabilities
        findings = [VulnFinding.model_validate(f) for f in observed.get("findings", [])]
        notes = [Finding(kind="vulnerability_input", subject="inbox", level="warning",
                         summary=p) for p in observed.get("problems", [])]
        notes += [Finding(kind="sbom_unavailable", subject=s, level="warning", summary=why)
                  for s, why in sorted(observed.get("unavailable", {}).items())]
        inventories = {}
        for service, doc in sorted(observed.get("running", {}).items()):
            inventory = _inventory(service, doc)
            if inventory is None:
                notes.append(Finding(kind="sbom_unavailable", subject=service,
                                     level="warning", summary=f"{service}: SBOM unreadable"))
            else:
                inventories[service] = inventory
        if policy is None or not findings:
            why = "no findings filed" if not findings else "severity.yaml has no vulnerabilities"
            return Analysis(summary=why, findings=notes)
        assessments = assess_all(findings, list(inventories.values()))
        vex = document(assessments, ctx.now)
        reports = [str(atomic_write(vex_path(ctx.settings.work_dir),
                                    json.dumps(vex, indent=2) + "\n"))]
        plans = []
        for service, inventory in inventories.items():
            triaged = triage([a for a in assessments if a.service == service], policy)
            if triaged:
                newer = [i for i in (_inventory(service, d) for d in
                                     observed.get("newer", {}).get(service, {}).values())
                         if i is not None]
                plans.append(plan_service(service, inventory, newer, triaged, policy))
        proposals = [_proposal(ctx.run_id, p) for p in plans if p.action == "patch"]
        signals = [_signal(p, ctx) for p in plans if p.action != "patch"]
        written = write_signals(signals, ctx.signals_dir) if signals else []
        patches = sorted((p.driver for p in plans if p.action == "patch"), key=lambda t: t.rank)
        worst = patches[0] if patches else None
        # Present but not affected (a fixed version, or never loaded) is worth saying; a
        # package the service does not ship at all is only a VEX statement.
        cleared = [_not_affected(a) for a in assessments if not a.affected
                   and a.justification is not Justification.COMPONENT_NOT_PRESENT]
        return Analysis(
            summary=_summary(plans, len(vex["statements"])),
            findings=notes + [_finding(p) for p in plans] + cleared, proposals=proposals,
            reports=reports, signals=[str(p) for p in written],
            severity=worst.severity if worst is not None else None,
            severity_rule=worst.rule if worst is not None else "")


def _inventory(service: str, doc: Any) -> Inventory | None:
    try:
        return read_sbom(f"{service} SBOM", doc)
    except SbomError:
        return None


def _describe(t: Triaged) -> str:
    a, f = t.assessment, t.assessment.finding
    known = ", known exploited (KEV)" if f.known_exploited else ""
    epss = f", EPSS {f.epss:.2f}" if f.epss is not None else ""
    cvss = f"CVSS {f.cvss_score:g}" if f.cvss_score is not None else "no CVSS"
    severity = t.severity.value if t.severity is not None else "signal"
    return f"{f.id} ({cvss}{epss}{known}): {a.reason} -> {severity} by {t.rule}"


def _proposal(run_id: str, plan: ServicePlan) -> RemediationProposal:
    reason = (f"deploy {plan.service} {plan.to_version} (runs {plan.running}): its SBOM no "
              f"longer carries {', '.join(plan.clears)}")
    return RemediationProposal(
        action=RemediationAction(id=f"{run_id}-{plan.service}-patch", type="deploy_version",
                                 service=plan.service, params={"to_version": str(plan.to_version)},
                                 reason=reason),
        specialist=NAME, hypothesis_id=plan.driver.assessment.finding.id, confidence=SURE,
        rationale="; ".join([reason, *(_describe(t) for t in plan.findings)]))


def _finding(plan: ServicePlan) -> Finding:
    driver = plan.driver
    level = _LEVEL.get(driver.severity, "info") if driver.severity is not None else "info"
    what = {"patch": f"patch: deploy {plan.to_version} (clears {', '.join(plan.clears)})",
            "mitigate": f"no fixed release: escalated with a mitigation: {plan.mitigation}",
            "signal": "below every severity rule: owner told by a signal"}[plan.action]
    return Finding(
        kind=f"vulnerability_{plan.action}", subject=plan.service, level=level,
        summary=f"{plan.service} {plan.running}: {driver.assessment.finding.id} — {what}",
        evidence=[_describe(t) for t in plan.findings],
        data={"action": plan.action, "finding": driver.assessment.finding.id,
              "affecting": len(plan.findings),  # distinct findings, after merging aliases
              "reports": len(driver.assessment.finding.sources),
              "severity": driver.severity.value if driver.severity is not None else None,
              "rule": driver.rule, "to_version": plan.to_version, "clears": plan.clears,
              "mitigation": plan.mitigation})


def _not_affected(a: Assessment) -> Finding:
    justification = a.justification.value if a.justification is not None else ""
    return Finding(
        kind="vulnerability_not_affected", subject=a.service, level="info",
        summary=f"{a.service} {a.service_version}: not affected by {a.finding.id} "
                f"({justification}): {a.reason}",
        data={"finding": a.finding.id, "justification": justification,
              "package": a.package.name if a.package is not None else None,
              "version": a.package.version if a.package is not None else None})


def _signal(plan: ServicePlan, ctx: AgentContext) -> Signal:
    finding = plan.driver.assessment.finding
    kind = "vulnerability_mitigation" if plan.action == "mitigate" else "vulnerability"
    ask = (f"Mitigate now and patch when a fixed release exists: {plan.mitigation}"
           if plan.action == "mitigate" else
           f"Plan an upgrade of {plan.service} past {finding.id} in the normal release cycle")
    return Signal(id=signal_id(kind, plan.service, finding.id), kind=kind,
                  title=f"{plan.service}: {finding.id} affects {plan.running}",
                  evidence=[_describe(t) for t in plan.findings], suggested_mission=ask,
                  created_at=ctx.now)


def _summary(plans: list[ServicePlan], not_affected: int) -> str:
    """What the run decided, the changes first: it titles the change record."""
    parts = [f"patch {p.service} to {p.to_version} ({p.driver.assessment.finding.id})"
             for p in plans if p.action == "patch"]
    parts += [f"mitigate {p.service} ({p.driver.assessment.finding.id}, no fixed release)"
              for p in plans if p.action == "mitigate"]
    told = sum(p.action == "signal" for p in plans)
    parts += [f"{told} for the owners (signal)"] if told else []
    parts.append(f"{not_affected} not affected (VEX)")
    return "; ".join(parts)
