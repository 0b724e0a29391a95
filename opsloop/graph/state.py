"""The graph's state: the incident record, plus what parallel specialists hand back."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from pydantic import BaseModel, Field

from opsloop.models import Diagnosis, Incident, TimelineEvent


class LoopState(TypedDict):
    """The operate loop and its change path carry one thing: the incident record, which holds
    the actions, their cases and the timeline."""

    incident: Incident


class Finding(BaseModel):
    """What one specialist hands back: its diagnosis and the timeline entries of its work."""

    diagnosis: Diagnosis
    timeline: list[TimelineEvent] = Field(default_factory=list)


class DiagnosisState(TypedDict, total=False):
    incident: Incident
    # Specialists run in parallel (Send); each appends, merge folds them into the incident.
    findings: Annotated[list[Finding], operator.add]


class SpecialistInput(TypedDict):
    incident: Incident
