"""A model that names no cause: the runbook checks still decide whether there is one.

A small model cut short by its context or call caps often answers with no hypothesis at
all. When the runbook checks support a cause, that silence must not leave the incident
undiagnosed (the offline reasoner's evidence-backed diagnosis stands); when they support
none, the model's answer is kept as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_server import model_settings, policy_outcome

from opsloop.graph.runner import OperateLoop
from opsloop.llm.testing import FakeModel, ScriptedServer
from opsloop.models import EventKind, Incident
from opsloop.settings import Settings
from opsloop.watch import run_scenario


def bad_deploy(loop: OperateLoop) -> Incident:
    try:
        return run_scenario(loop, "bad_deploy", 7, lambda _m: None).incidents[0]
    finally:
        loop.close()


def offline_and_model(tmp_path: Path, make_loop: Callable[[Settings], OperateLoop],
                      model: FakeModel) -> tuple[Incident, Incident]:
    """The bad_deploy incident offline, and on a scripted server answering as `model`."""
    expected = bad_deploy(make_loop(Settings(work_dir=tmp_path / "offline")))
    with ScriptedServer(model) as server:
        return expected, bad_deploy(make_loop(model_settings(tmp_path / "model", server)))


class Silent(FakeModel):
    """Runs the runbook checks like the fake model, then concludes with no hypothesis and
    no summary (as a small model out of room does)."""

    def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        if any(m.get("role") == "tool" for m in request.get("messages", [])):
            return {"role": "assistant", "content": json.dumps({"hypotheses": []})}
        return super().respond(request)


def test_checks_that_support_a_cause_outweigh_a_model_that_names_none(
        tmp_path: Path, make_loop: Callable[[Settings], OperateLoop]) -> None:
    expected, incident = offline_and_model(tmp_path, make_loop, Silent())
    assert policy_outcome(incident) == policy_outcome(expected)
    assert expected.actions, "the scenario's checks support a cause offline"
    reasoners = {d.specialist: d.reasoner for d in incident.diagnoses}
    offline_found = {d.specialist for d in expected.diagnoses
                     if any(h.confidence >= Settings().min_confidence for h in d.hypotheses)}
    # where the checks support a cause, the evidence stands; elsewhere the model's silence
    assert {s for s, r in reasoners.items() if r == "fallback"} == offline_found
    assert {r for s, r in reasoners.items() if s not in offline_found} == {"model"}
    notes = [e.message for e in incident.timeline if e.kind == EventKind.MODEL_FALLBACK]
    assert any("named no cause the evidence supports" in n for n in notes), notes
    for d in incident.diagnoses:
        assert d.model_calls, "the model calls spent stay on the record"


class Terse(FakeModel):
    """Runs the runbook checks like the fake model, then names the supported cause with a
    wrong call id and no remediation (as small models do)."""

    def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        reply = super().respond(request)
        if reply.get("tool_calls") or not any(
                m.get("role") == "tool" for m in request.get("messages", [])):
            return reply
        answer = json.loads(reply["content"])
        for h in answer["hypotheses"]:
            h["evidence"], h["remediation"] = ["call_that_never_was"], []
        return {"role": "assistant", "content": json.dumps(answer)}


def test_a_named_cause_keeps_the_checks_run_on_it_and_the_runbooks_actions(
        tmp_path: Path, make_loop: Callable[[Settings], OperateLoop]) -> None:
    expected, incident = offline_and_model(tmp_path, make_loop, Terse())
    assert policy_outcome(incident) == policy_outcome(expected)
    acted = [d for d in incident.diagnoses if d.proposals]
    assert acted and {d.reasoner for d in acted} == {"model"}  # the model's own diagnosis
    top = acted[0].hypotheses[0]
    assert any(e.holds for e in top.evidence) and top.confidence >= Settings().min_confidence
