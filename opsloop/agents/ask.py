"""`opsloop ask`: questions about incidents answered from the records, citing each one used.

Offline, the question is parsed (incident ids, services, severities, action types, a time
window such as "last night") and its kind recognised; the matching records answer it.
With a model, the same retrieval picks the records and the model writes the answer from
them alone: it must cite records it was given, and an answer citing none is replaced by
the offline one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from opsloop.agents.ask_answers import ANSWERERS, kind_of
from opsloop.agents.ask_records import (
    Answer,
    Citation,
    Records,
    parse_query,
    select,
)
from opsloop.llm.prompting import data_block, prompt
from opsloop.llm.structured import schema_text
from opsloop.models import Incident

if TYPE_CHECKING:  # the model stack loads only when a model answers
    from opsloop.llm.client import ModelClient

_NEEDS_NO_INCIDENT = {"runbook", "signals", "count", "list", "top_services"}
_MAX_RECORDS = 8


class ModelAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    answer: str = Field(min_length=1, max_length=3000)
    citations: list[str] = Field(default_factory=list, max_length=20)


def answer_offline(question: str, records: Records) -> Answer:
    question = question.strip()
    if not question:
        raise ValueError("the question is empty; ask e.g. \"why did checkout fail last night?\"")
    query = parse_query(question, records)
    kind = kind_of(question)
    found = select(query, records.incidents)
    lead = ""
    if not found and query.window is not None:
        wider = select(query, records.incidents, use_window=False)
        if wider:
            lead = (f"No matching incident {query.window.label} "
                    f"({query.window.start:%Y-%m-%d %H:%M}–{query.window.end:%H:%M}); "
                    "the most recent one that matches otherwise:")
            found = wider[:1]
    lines, cites = ANSWERERS[kind](query, found, records)
    if not lines:
        if not found and kind not in _NEEDS_NO_INCIDENT:
            text = f"No incident in the records matches {_describe(query) or 'the question'}."
        else:
            text = (f"The records of the {len(found)} matching incident(s) say nothing about "
                    f"that ({kind.replace('_', ' ')}).")
    else:
        text = "\n".join([lead, *lines] if lead else lines)
    return Answer(question=question, kind=kind, text=text, citations=_unique(cites),
                  incidents=[i.id for i in found])


def _describe(query: Any) -> str:
    parts = [*query.ids, *query.services, *(s.value for s in query.severities)]
    if query.window is not None:
        parts.append(query.window.label)
    return ", ".join(parts)


def _unique(cites: list[Citation]) -> list[Citation]:
    seen: dict[str, Citation] = {}
    for c in cites:
        seen.setdefault(c.ref, c)
    return list(seen.values())


def _incident_record(i: Incident) -> dict[str, Any]:
    rc = i.root_cause
    return {"ref": i.id, "kind": "incident", "text": (
        f"{i.title}; {i.severity.value if i.severity else 'unclassified'}; status "
        f"{i.status.value}; opened {i.opened_at:%Y-%m-%d %H:%M}; services "
        f"{', '.join(i.services)}; root cause "
        + (f"{rc.category} on {rc.service}: {rc.cause}" if rc and not i.novel else "unknown")
        + "; actions: " + "; ".join(
            f"{r.action.describe()} {r.decision.outcome.value if r.decision else 'undecided'}"
            + (f" {r.approval.verdict.past} by {r.approval.by}" if r.approval else "")
            + (f" {r.result.status.value}" if r.result else "") for r in i.actions)
        + (f"; verification {'passed' if i.verification.passed else 'failed'}"
           if i.verification else ""))}


def answer(question: str, records: Records, client: ModelClient | None = None) -> Answer:
    """Offline without a client; with one, the model writes from the retrieved records."""
    offline = answer_offline(question, records)
    if client is None:
        return offline
    from langchain_core.messages import HumanMessage, SystemMessage

    from opsloop.llm.toolloop import ANSWER_ONLY, LoopFailed, ToolLoop

    by_id = {i.id: i for i in records.incidents}
    given = [_incident_record(by_id[i]) for i in offline.incidents[:_MAX_RECORDS]]
    given += [{"ref": c.ref, "kind": c.kind, "text": c.excerpt} for c in offline.citations
              if c.ref not in by_id][:_MAX_RECORDS]
    given.append({"ref": "offline-answer", "kind": "derived", "text": offline.text[:3000]})
    messages = [SystemMessage(prompt("ask", schema=schema_text(ModelAnswer))),
                HumanMessage("\n\n".join([data_block("question", {"question": offline.question}),
                                          data_block("records", given)]))]
    loop = ToolLoop(client, [], ModelAnswer, ANSWER_ONLY, incident_id="ask",
                    specialist="", purpose="ask")
    try:
        written = loop.run(messages).output
    except LoopFailed:
        return offline
    refs = {g["ref"] for g in given} - {"offline-answer"}
    cited = [c for c in written.citations if c in refs]
    if not cited:
        return offline  # an answer resting on no given record is not grounded
    known = {c.ref: c for c in offline.citations}
    return offline.model_copy(update={
        "text": written.answer, "answered_by": client.model_name,
        "citations": [known.get(c) or Citation(ref=c, kind="incident") for c in cited]})
