"""What the loop writes down for people: postmortems, improvement signals, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from opsloop.models.timeline import TimelineEvent


class ActionItem(BaseModel):
    kind: str  # mitigate | prevent | detect | process
    description: str
    owner: str = "unassigned"


class Postmortem(BaseModel):
    """Google's postmortem template, drafted from the incident record."""

    incident_id: str
    title: str
    status: str = "draft"
    summary: str
    impact: str
    root_causes: str
    trigger: str
    resolution: str
    detection: str
    action_items: list[ActionItem] = Field(default_factory=list)
    went_well: list[str] = Field(default_factory=list)
    went_wrong: list[str] = Field(default_factory=list)
    lucky: list[str] = Field(default_factory=list)
    timeline: list[TimelineEvent] = Field(default_factory=list)


class Signal(BaseModel):
    """An improvement signal for the Discover loop, filed in work/signals/."""

    id: str
    kind: str  # repeated_incidents | novel_failure | verification_failed | ...
    title: str
    evidence: list[str]
    suggested_mission: str
    incidents: list[str] = Field(default_factory=list)
    created_at: datetime


class AuditRecord(BaseModel):
    at: datetime  # wall clock
    incident_id: str
    actor: str  # "opsloop" or a person
    kind: str  # decision | approval | action | rollback | escalation | ...
    detail: dict[str, Any] = Field(default_factory=dict)
