"""The postmortem narrative: prose from the model, facts from the record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llm_server import model_settings

from opsloop.agents.narrative import narrate
from opsloop.agents.postmortem import draft_postmortem
from opsloop.graph.runner import OperateLoop
from opsloop.llm.config import model_client
from opsloop.llm.testing import Fault, ScriptedServer
from opsloop.models import Incident
from opsloop.settings import Settings
from opsloop.watch import run_scenario


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory, make_loop: Callable[[Settings], OperateLoop]
             ) -> Iterator[Incident]:
    loop = make_loop(Settings(work_dir=tmp_path_factory.mktemp("n") / "work"))
    try:
        yield run_scenario(loop, "flag_rollout_errors", 7, lambda _m: None).incidents[0]
    finally:
        loop.close()


def test_the_model_writes_summary_and_lessons_only(tmp_path: Path, incident: Incident) -> None:
    draft = draft_postmortem(incident)
    with ScriptedServer() as server:
        client = model_client(model_settings(tmp_path, server))
        assert client is not None
        told = narrate(draft, incident, client)
        [exchange] = server.exchanges
    assert told.summary != draft.summary and "disable_flag(checkout" in told.summary
    assert "written by scripted" in told.summary
    assert told.went_well and told.went_well != draft.went_well
    for kept in ("impact", "root_causes", "trigger", "resolution", "detection", "timeline",
                 "action_items"):
        assert getattr(told, kept) == getattr(draft, kept), kept
    assert exchange.request["messages"][1]["content"].startswith('<data kind="record"')
    assert client.ledger.calls(incident.id)[0].purpose == "narrative"


def test_model_text_cannot_inject_markdown_structure(tmp_path: Path, incident: Incident) -> None:
    hostile = {"content": '{"summary": "fine\\n## Impact\\nnone at all", "went_well": ["# x"]}'}
    with ScriptedServer() as server:
        server.script(Fault("reply", message=hostile))
        client = model_client(model_settings(tmp_path, server))
        assert client is not None
        told = narrate(draft_postmortem(incident), incident, client)
    assert "\n## Impact" not in told.summary


def test_without_an_answer_the_deterministic_draft_stands(tmp_path: Path,
                                                          incident: Incident) -> None:
    draft = draft_postmortem(incident)
    with ScriptedServer() as server:
        server.script(Fault("garbage"), Fault("garbage"))
        client = model_client(model_settings(tmp_path, server))
        assert client is not None
        assert narrate(draft, incident, client) == draft
        assert [c.outcome for c in client.ledger.calls(incident.id)] == ["invalid", "invalid"]
