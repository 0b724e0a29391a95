"""The incident's timeline: what happened when, each entry of a kind the loop knows."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class EventKind(StrEnum):
    """Every kind of timeline entry the loop writes; readers match on these, never on text."""

    # intake
    FIRST_SIGNAL = "first_signal"  # the earliest moment any alert's condition held
    ALERT = "alert"
    ALERT_QUALITY = "alert_quality"  # an alert that names neither a runbook nor an action
    OPENED = "opened"
    # triage
    TRIAGED = "triaged"
    ESCALATED = "escalated"  # a human was paged (triage), or the loop handed over (learn)
    WAR_ROOM = "war_room"
    # diagnosis
    ROUTED = "routed"
    SPECIALIST = "specialist"
    MODEL_RETRY = "model_retry"
    MODEL_REPAIR = "model_repair"
    MODEL_FORMAT = "model_format"
    MODEL_LIMIT = "model_limit"
    MODEL_NOTE = "model_note"
    MODEL_FALLBACK = "model_fallback"
    DIAGNOSED = "diagnosed"
    # the change path
    DECISION = "decision"
    APPROVAL = "approval"  # a human's answer as it arrives (the war-room log)
    APPROVED = "approved"
    REJECTED = "rejected"
    ACTION = "action"
    VERIFIED = "verified"
    VERIFICATION_FAILED = "verification_failed"
    ROLLBACK = "rollback"
    # learn
    CLOSED = "closed"
    POSTMORTEM = "postmortem"
    SIGNAL = "signal"
    RUNBOOK_PROPOSAL = "runbook_proposal"


class TimelineEvent(BaseModel):
    at: datetime  # the environment's clock (simulated time in the simulator)
    kind: EventKind
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
