"""A specialist that reasons with a model: a bounded tool loop, then a checked `Diagnosis`.

What the model may decide: which hypotheses to test, which tools to call, what it makes
of the results, the ranking, and which actions to propose. What code decides: the
evidence recorded (the tool results the model cited, never its own words about them),
that a hypothesis no cited evidence supports stays below the confidence needed to act,
the action ids, and — downstream, unchanged — every policy decision. When the model
fails (no answer after retries, an answer that does not validate after one repair, the
token budget spent before it started, an answer reached without running any tool) the
offline reasoner answers instead; so it does when the model names no cause the evidence
supports while the runbook checks do support one (a model cut short by its limits never
leaves a diagnosable incident undiagnosed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from opsloop.agents.reasoner import affected_services, candidate_runbooks, diagnose
from opsloop.agents.specialist_tools import RUNBOOK_TOOL, runbook_tool, toolbox_tools
from opsloop.agents.specialists import SPECIALISTS
from opsloop.llm.budget import estimate_tokens, prompt_budget, tools_that_fit
from opsloop.llm.client import ModelClient
from opsloop.llm.prompting import data_block, prompt, trim
from opsloop.llm.structured import schema_text
from opsloop.llm.toolloop import Limits, LoopFailed, LoopTrace, ToolLoop, ToolRecord
from opsloop.models import (
    Diagnosis,
    EventKind,
    Evidence,
    Hypothesis,
    Incident,
    ParamValue,
    RemediationAction,
    RemediationProposal,
    ToolStatus,
)
from opsloop.models.catalog import ACTION_TYPES
from opsloop.runbooks.format import Runbook
from opsloop.settings import Settings
from opsloop.tools.protocols import RunbookIndex
from opsloop.tools.toolbox import Toolbox

_SECTION_CHARS = 600


class ProposedAction(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a chatty model's extra keys carry no weight

    type: str = Field(max_length=64)
    service: str = Field(max_length=80)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    reason: str = Field(default="", max_length=600)


class ModelHypothesis(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cause: str = Field(max_length=600)
    category: str = Field(max_length=64)
    service: str = Field(max_length=80)
    runbook: str = Field(default="", max_length=80)
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list, max_length=24)  # tool-call ids
    remediation: list[ProposedAction] = Field(default_factory=list, max_length=6)


class Conclusion(BaseModel):
    """What a specialist's model must answer with."""

    model_config = ConfigDict(extra="ignore")

    # Optional: small models often leave it out, and the hypotheses are what count.
    summary: str = Field(default="", max_length=1200)
    hypotheses: list[ModelHypothesis] = Field(default_factory=list, max_length=12)


@dataclass
class SpecialistRun:
    diagnosis: Diagnosis
    notes: list[tuple[EventKind, str]] = field(default_factory=list)  # (timeline kind, message)
    tool_calls: int = 0


def incident_data(incident: Incident, services: list[str]) -> dict[str, object]:
    return {
        "id": incident.id, "title": incident.title, "environment": incident.environment,
        "severity": incident.severity.value if incident.severity else None,
        "affected_services": services, "opened_at": incident.opened_at.isoformat(),
        "impact": incident.impact.model_dump(mode="json") if incident.impact else None,
        "alerts": [{"name": a.name, "service": a.service, "source": a.source,
                    "labels": a.labels, "annotations": a.annotations,
                    "starts_at": a.starts_at.isoformat()} for a in incident.anomalies],
    }


def runbook_data(rb: Runbook, *, brief: bool = False) -> dict[str, object]:
    if brief:
        return {"id": rb.id, "title": rb.title, "services": rb.services,
                "hypotheses": [{"id": h.id, "category": h.category, "blames": h.service,
                                "cause": trim(h.cause, 160)} for h in rb.hypotheses]}
    sections = rb.sections()
    return {
        "id": rb.id, "title": rb.title, "services": rb.services, "alerts": rb.alerts,
        "hypotheses": [{"id": h.id, "category": h.category, "cause": h.cause,
                        "blames": h.service,
                        "checks": [{"id": c.id, "tool": c.tool, "description": c.description,
                                    "required": c.required, "refutes": c.refutes}
                                   for c in h.checks],
                        "remediation": [{"action": a.action, "service": a.service,
                                         "params": a.params} for a in h.remediation]}
                       for h in rb.hypotheses],
        "guidance": {k: trim(sections[k], _SECTION_CHARS)
                     for k in ("Diagnosis", "Mitigation") if k in sections},
    }


def messages_for(specialist: str, incident: Incident, runbooks: list[Runbook],
                 services: list[str], settings: Settings, *, brief: bool = False
                 ) -> list[BaseMessage]:
    spec = SPECIALISTS[specialist]
    system = prompt("specialist", specialist=specialist, purpose=spec.purpose,
                    actions=", ".join(ACTION_TYPES), max_steps=settings.llm_max_steps,
                    max_tool_calls=settings.llm_max_tool_calls,
                    min_confidence=settings.min_confidence, schema=schema_text(Conclusion))
    task = "\n\n".join([
        prompt("specialist_task", incident_id=incident.id, services=", ".join(services)),
        data_block("incident", incident_data(incident, services)),
        data_block("runbooks", [runbook_data(rb, brief=brief) for rb in runbooks]),
    ])
    return [SystemMessage(system), HumanMessage(task)]


def _evidence(record: ToolRecord) -> list[Evidence]:
    """What a cited tool call actually returned, as evidence records."""
    if record.name == RUNBOOK_TOOL and record.payload.get("status") == "ok":
        return [Evidence.model_validate(c) for c in record.payload.get("checks", [])]
    status = str(record.payload.get("status", "error"))
    return [Evidence(
        check=record.call_id, description=f"{record.name} cited by the model",
        tool=record.name, args=record.args,
        status=ToolStatus(status) if status in ToolStatus._value2member_map_ else ToolStatus.ERROR,
        observed=str(record.payload.get("summary") or record.payload.get("error") or "")[:400],
        # A tool answering is not the tool agreeing: only a runbook check's expectation can
        # hold, so citing any successful call cannot keep a confidence high.
        expectation="cited as supporting evidence (not checked)", holds=None)]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_") or "unknown"


def _suggested(source: ToolRecord | None, min_confidence: float) -> list[ProposedAction]:
    """The runbook's own actions for a hypothesis its checks support, filled as the offline
    reasoner fills them: what the model gets when it names the cause but proposes nothing."""
    if source is None or float(source.payload.get("confidence") or 0) < min_confidence:
        return []
    actions = []
    for raw in source.payload.get("suggested_actions") or []:
        try:
            actions.append(ProposedAction.model_validate(raw))
        except ValueError:
            continue
    return actions


def to_diagnosis(specialist: str, incident: Incident, conclusion: Conclusion, trace: LoopTrace,
                 runbooks: list[Runbook], min_confidence: float) -> tuple[Diagnosis, list[str]]:
    """The model's conclusion, checked against what the tools really returned."""
    known = {rb.id for rb in runbooks}
    notes: list[str] = []
    ranked: list[tuple[Hypothesis, ModelHypothesis, list[ProposedAction]]] = []
    for mh in conclusion.hypotheses:
        cited = [trace.tools[c] for c in mh.evidence if c in trace.tools]
        # The checks run on exactly this hypothesis are its evidence, cited or not: small
        # models often name the right cause and cite the wrong call id.
        cited += [r for r in trace.tools.values() if r.name == RUNBOOK_TOOL and r not in cited
                  and r.payload.get("status") == "ok"
                  and (r.payload.get("category"), r.payload.get("service"))
                  == (mh.category, mh.service)]
        evidence = [e for record in cited for e in _evidence(record)]
        confidence = mh.confidence
        if confidence >= min_confidence and not any(e.holds for e in evidence):
            confidence = round(max(0.0, min_confidence - 0.01), 4)
            notes.append(f"{mh.category} on {mh.service}: no cited evidence held; "
                         f"confidence capped at {confidence:.0%}")
        source = next((r for r in cited if r.name == RUNBOOK_TOOL
                       and r.payload.get("category") == mh.category), None)
        exact = next((r for r in cited if r.name == RUNBOOK_TOOL
                      and (r.payload.get("category"), r.payload.get("service"))
                      == (mh.category, mh.service)), None)
        hid = (f"{source.payload['runbook']}.{source.payload['hypothesis']}@{mh.service}"
               if source else f"model.{_slug(mh.category)}@{mh.service}")
        ranked.append((Hypothesis(
            id=hid, cause=mh.cause, category=mh.category, service=mh.service,
            runbook=mh.runbook if mh.runbook in known else "", confidence=confidence,
            evidence=evidence), mh, mh.remediation or _suggested(exact, min_confidence)))
    ranked.sort(key=lambda entry: -entry[0].confidence)  # stable: the model's order breaks ties

    proposals: list[RemediationProposal] = []
    described: set[str] = set()
    top = ranked[0][0] if ranked else None
    for hypothesis, mh, actions in ranked:
        if top is None or top.confidence < min_confidence:
            break
        if hypothesis.confidence < min_confidence or hypothesis.category != top.category:
            continue
        for pa in actions:
            action = RemediationAction(
                id=f"{incident.id}-{specialist}-a{len(proposals) + 1}", type=pa.type,
                service=pa.service, params=pa.params, reason=pa.reason or hypothesis.cause)
            if action.describe() in described:
                continue
            described.add(action.describe())
            hypothesis.remediation.append(action)
            proposals.append(RemediationProposal(
                action=action, specialist=specialist, hypothesis_id=hypothesis.id,
                confidence=hypothesis.confidence, rationale=trim(mh.cause, 300)))
    head = (f"{specialist}: {top.category} on {top.service} ({top.confidence:.0%}): {top.cause}"
            if top else f"{specialist}: no hypothesis")
    summary = f"{head} [model {trace.steps} call(s), {trace.tool_calls} tool call(s)]; " + trim(
        conclusion.summary, 400)
    return Diagnosis(specialist=specialist, hypotheses=[h for h, _, _ in ranked],
                     runbooks=[rb.id for rb in runbooks], proposals=proposals,
                     summary=summary, reasoner="model", model_calls=trace.calls), notes


def note_kind(note: str) -> EventKind:
    """The timeline kind for a loop note: what happened, in one word."""
    for word, kind in (("retried", EventKind.MODEL_RETRY), ("repair", EventKind.MODEL_REPAIR),
                       ("response_format", EventKind.MODEL_FORMAT),
                       ("concluding", EventKind.MODEL_LIMIT)):
        if word in note:
            return kind
    return EventKind.MODEL_NOTE


def diagnose_with_model(specialist: str, incident: Incident, toolbox: Toolbox,
                        index: RunbookIndex, client: ModelClient,
                        settings: Settings) -> SpecialistRun:
    """Diagnose with the model; the offline reasoner answers when the model cannot."""
    client.ledger.seed(incident.id, incident.usage.total.total_tokens)
    runbooks = candidate_runbooks(specialist, incident, index, settings.runbooks_per_specialist)
    services = affected_services(incident)
    tools = toolbox_tools(toolbox)
    if any(rb.hypotheses for rb in runbooks):
        tools.insert(0, runbook_tool([rb for rb in runbooks if rb.hypotheses], toolbox))
    budget = prompt_budget(settings)
    offered = tools_that_fit([t.schema() for t in tools], budget)
    setup: list[tuple[EventKind, str]] = []
    if offered < len(tools):
        setup.append((EventKind.MODEL_NOTE, (
            f"{specialist}: offered {offered} of {len(tools)} tools"
            f"{' (the runbook checks first)' if tools[0].name == RUNBOOK_TOOL else ''}; the "
            f"rest do not fit a {budget:,}-token prompt beside the evidence")))
        tools = tools[:offered]
    limits = Limits(settings.llm_max_steps, settings.llm_max_tool_calls,
                    settings.llm_tool_output_chars)
    loop = ToolLoop(client, tools, Conclusion, limits, incident_id=incident.id,
                    specialist=specialist)
    messages = messages_for(specialist, incident, runbooks, services, settings)
    if estimate_tokens(messages, [t.schema() for t in tools]) > budget:
        # The runbooks' hypotheses, without the checks' details and guidance text:
        # `run_runbook_checks` reports the checks and suggested actions when called.
        messages = messages_for(specialist, incident, runbooks, services, settings, brief=True)
    try:
        result = loop.run(list(messages))
    except LoopFailed as failed:
        return _offline(specialist, incident, toolbox, index, settings, failed.trace,
                        failed.reason)
    if tools and result.trace.tool_calls == 0:
        # Confidence only comes from checks that ran; an answer that ran none rests on the
        # model's say-so, and the offline reasoner can run them instead.
        reason = "it concluded without running a single tool"
        result.trace.calls[-1].outcome, result.trace.calls[-1].error = "invalid", reason
        return _offline(specialist, incident, toolbox, index, settings, result.trace, reason)
    diagnosis, caps = to_diagnosis(specialist, incident, result.output, result.trace, runbooks,
                                   settings.min_confidence)
    notes = setup + [(note_kind(n), f"{specialist}: {n}") for n in [*result.trace.notes, *caps]]
    if not actionable(diagnosis, settings.min_confidence):
        return _checked(specialist, incident, toolbox, index, settings, result.trace,
                        diagnosis, notes)
    return SpecialistRun(diagnosis, notes, result.trace.tool_calls)


def actionable(diagnosis: Diagnosis, min_confidence: float) -> bool:
    """Whether the diagnosis names a cause supported enough to act on."""
    return any(h.confidence >= min_confidence for h in diagnosis.hypotheses)


def _checked(specialist: str, incident: Incident, toolbox: Toolbox, index: RunbookIndex,
             settings: Settings, trace: LoopTrace, said: Diagnosis,
             notes: list[tuple[EventKind, str]]) -> SpecialistRun:
    """The model named no supported cause: the runbook checks it may not have reached (cut
    short by its limits or context) still run. When they support a cause, the evidence wins
    over the model's silence; when they do not, the model's answer stands."""
    offline = diagnose(specialist, incident, toolbox, index,
                       k_runbooks=settings.runbooks_per_specialist,
                       min_confidence=settings.min_confidence)
    if not actionable(offline, settings.min_confidence):
        return SpecialistRun(said, notes, trace.tool_calls)
    top = offline.hypotheses[0]
    notes.append((EventKind.MODEL_FALLBACK, (
        f"{specialist}: the model named no cause the evidence supports; the runbook checks "
        f"support {top.category} on {top.service} ({top.confidence:.0%}), so the offline "
        "reasoner's diagnosis stands")))
    diagnosis = offline.model_copy(update={"reasoner": "fallback", "model_calls": trace.calls})
    return SpecialistRun(diagnosis, notes, trace.tool_calls)


def _offline(specialist: str, incident: Incident, toolbox: Toolbox, index: RunbookIndex,
             settings: Settings, trace: LoopTrace, reason: str) -> SpecialistRun:
    """The offline reasoner's diagnosis, carrying the model calls spent and why they failed."""
    notes = [(note_kind(n), f"{specialist}: {n}") for n in trace.notes]
    notes.append((EventKind.MODEL_FALLBACK, f"{specialist}: model gave no usable answer "
                  f"({trim(reason, 200)}); the offline reasoner took over"))
    offline = diagnose(specialist, incident, toolbox, index,
                       k_runbooks=settings.runbooks_per_specialist,
                       min_confidence=settings.min_confidence)
    diagnosis = offline.model_copy(update={"reasoner": "fallback", "model_calls": trace.calls})
    return SpecialistRun(diagnosis, notes, trace.tool_calls)
