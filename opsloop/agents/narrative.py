"""The postmortem narrative: with a model, the summary and lessons are written by it.

Only prose is the model's. The timeline, impact numbers, root-cause evidence, resolution
and action items stay exactly as `draft_postmortem` built them from the record; the model
gets those facts as data and its text goes in escaped (markdown-safe), marked as written
by the model. When the model cannot answer, the deterministic draft stands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from opsloop.agents.markdown import inline, one_line
from opsloop.llm.client import ModelClient
from opsloop.llm.prompting import data_block, prompt
from opsloop.llm.structured import schema_text
from opsloop.llm.toolloop import ANSWER_ONLY, LoopFailed, ToolLoop
from opsloop.models import Incident, Postmortem
from opsloop.settings import Settings

Narrator = Callable[[Postmortem, Incident], Postmortem]
_ITEM = 300


class Narrative(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary: str = Field(min_length=1, max_length=2000)
    went_well: list[str] = Field(default_factory=list, max_length=8)
    went_wrong: list[str] = Field(default_factory=list, max_length=8)
    lucky: list[str] = Field(default_factory=list, max_length=6)


def record_facts(incident: Incident) -> dict[str, Any]:
    """What the narrative may draw on: the record, nothing else."""
    cause = incident.root_cause
    return {
        "id": incident.id, "title": incident.title, "status": incident.status.value,
        "severity": incident.severity.value if incident.severity else None,
        "services": incident.services, "opened_at": incident.opened_at.isoformat(),
        "alerts": [{"name": a.name, "service": a.service,
                    "summary": a.annotations.get("summary", "")} for a in incident.anomalies],
        "impact": incident.impact.model_dump(mode="json") if incident.impact else None,
        "root_cause": None if cause is None else {
            "cause": cause.cause, "category": cause.category, "service": cause.service,
            "confidence": cause.confidence,
            "evidence_held": [e.observed for e in cause.evidence if e.holds][:6]},
        "novel": incident.novel,
        # What ran; the agent's own proposal when a person changed it; how long the person
        # took on the wall clock (the record's clock may stand still while people think).
        "actions": [{"action": r.action.describe(),
                     "agent_proposed": (r.proposed or r.action).describe(),
                     "decision": r.decision.outcome.value if r.decision else None,
                     "approved_by": r.approval.by if r.approval else None,
                     "verdict": r.approval.verdict.value if r.approval else None,
                     "answer_seconds_wall_clock": (r.approval.waited_seconds
                                                   if r.approval else None),
                     "result": r.result.status.value if r.result else None}
                    for r in incident.actions],
        "verification": None if incident.verification is None else {
            "passed": incident.verification.passed,
            "rolled_back": incident.verification.rolled_back},
        "timeline": [f"{e.at:%H:%M} {e.kind}: {one_line(e.message, 160)}"
                     for e in incident.timeline][:40],
    }


def narrate(draft: Postmortem, incident: Incident, client: ModelClient) -> Postmortem:
    """The draft with the model's summary and lessons; the draft itself if the model fails."""
    messages = [SystemMessage(prompt("narrative", schema=schema_text(Narrative))),
                HumanMessage(data_block("record", record_facts(incident)))]
    loop = ToolLoop(client, [], Narrative, ANSWER_ONLY, incident_id=incident.id,
                    specialist="", purpose="narrative")
    try:
        story = loop.run(messages).output
    except LoopFailed:
        return draft  # the failed calls, and why, are in the usage record; the draft stands
    credit = (f"\n\n_Summary and lessons written by {inline(client.model_name) or 'a model'} "
              "from the incident record; impact, timeline and actions are the record's own._")
    return draft.model_copy(update={
        "summary": inline(story.summary, 2000) + credit,
        "went_well": [one_line(s, _ITEM) for s in story.went_well],
        "went_wrong": [one_line(s, _ITEM) for s in story.went_wrong],
        "lucky": [one_line(s, _ITEM) for s in story.lucky],
    })


def narrator_for(client: ModelClient | None, settings: Settings) -> Narrator | None:
    """The postmortem hook: None (the deterministic draft) when no model is configured."""
    if client is None or not settings.llm_narrative:
        return None
    model = client

    def narrator(draft: Postmortem, incident: Incident) -> Postmortem:
        return narrate(draft, incident, model)

    return narrator
