"""What a scheduled agent is written against: its context, its findings, its outcome.

An agent is a name, a purpose, the read-only tools it uses, and two steps:

- `observe(ctx)` reads production and history (telemetry, the change feed, stored incidents,
  signals) and returns plain JSON-able data: this is checkpointed, so a run that dies after
  observing does not observe again;
- `analyse(ctx, observed)` turns that into an `Analysis`: findings for people, reports and
  signals it wrote (idempotently: a re-run for the same `due_at` overwrites, never adds), and
  proposals, which the runner opens as a change record and sends through the same
  guardrails -> approval -> act -> verify -> learn path as an incident's.

Agents never act themselves and never decide policy: a proposal is only a proposal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from opsloop.models import RemediationProposal, Severity
from opsloop.policy import Policies
from opsloop.settings import Settings
from opsloop.store import IncidentStore
from opsloop.tools.protocols import Telemetry


@dataclass(frozen=True)
class AgentContext:
    """One run's dependencies. `now` is production's clock when the run started; `due_at` the
    scheduled time it runs for (reports are named by the period it closes, not by `now`)."""

    run_id: str
    agent: str
    due_at: datetime
    now: datetime
    settings: Settings
    policies: Policies
    telemetry: Telemetry
    store: IncidentStore

    @property
    def reports_dir(self) -> Path:
        return self.settings.work_dir / "reports"

    @property
    def signals_dir(self) -> Path:
        return self.settings.signals_dir


class Finding(BaseModel):
    """One thing an agent wants a person to know, with the evidence behind it."""

    kind: str  # e.g. "alert_without_action", "slo_unhealthy"
    subject: str  # what it is about: a service, an alert, an SLO
    summary: str
    evidence: list[str] = Field(default_factory=list)
    level: str = "info"  # info | warning | critical
    data: dict[str, Any] = Field(default_factory=dict)


class Analysis(BaseModel):
    """What one run produced."""

    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)
    proposals: list[RemediationProposal] = Field(default_factory=list)
    reports: list[str] = Field(default_factory=list)  # paths written under work/reports
    signals: list[str] = Field(default_factory=list)  # paths written under work/signals
    # A severity a policy rule gave the proposals (e.g. severity.yaml vulnerabilities); the
    # change record takes it only when stricter than schedule.yaml's for the agent.
    severity: Severity | None = None
    severity_rule: str = ""


class ScheduledAgent(Protocol):
    """A scheduled agent, declared like a specialist: name, purpose, tools."""

    name: str
    purpose: str
    tools: tuple[str, ...]

    def observe(self, ctx: AgentContext) -> dict[str, Any]: ...

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis: ...
