"""The graph's state: the incident record plus what parallel specialists append."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from opsloop.models import Diagnosis, Incident, TimelineEvent


class LoopState(TypedDict, total=False):
    incident: Incident
    # Specialists run in parallel (Send); each appends, the supervisor merges.
    findings: Annotated[list[Diagnosis], operator.add]
    events: Annotated[list[TimelineEvent], operator.add]
    # Action ids cleared to run: policy said auto, or a human approved.
    cleared: list[str]


class SpecialistInput(TypedDict):
    incident: Incident
