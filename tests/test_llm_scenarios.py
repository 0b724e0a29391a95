"""Every demo scenario through the model path (the scripted server on loopback): the same
policy decisions as offline, few model calls, a bounded prompt, usage in the record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llm_server import model_settings, policy_outcome

from opsloop.cli.main import main
from opsloop.graph.runner import OperateLoop
from opsloop.llm.testing import ScriptedServer
from opsloop.models import Verdict
from opsloop.settings import Settings
from opsloop.simulator import SCENARIOS
from opsloop.watch import run_scenario

MAX_DIAGNOSIS_CALLS = 6
MAX_PROMPT_TOKENS = 12_000  # per call, as the server counts them


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as s:
        yield s


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_model_path_makes_the_same_policy_decisions_as_offline(
        tmp_path: Path, server: ScriptedServer, name: str,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    offline = make_loop(Settings(work_dir=tmp_path / "offline"))
    try:
        expected = policy_outcome(run_scenario(offline, name, 7, lambda _m: None).incidents[0])
    finally:
        offline.close()
    seen = len(server.exchanges)
    loop = make_loop(model_settings(tmp_path / "model", server))
    try:
        incident = run_scenario(loop, name, 7, lambda _m: None).incidents[0]
    finally:
        loop.close()
    assert policy_outcome(incident) == expected
    assert {d.reasoner for d in incident.diagnoses} == {"model"}

    diagnosis_calls = [c for c in incident.usage.calls if c.purpose == "specialist"]
    assert len(diagnosis_calls) <= MAX_DIAGNOSIS_CALLS
    exchanges = server.exchanges[seen:]
    assert len(exchanges) == len(incident.usage.calls)  # every call reached the record
    assert incident.usage.total.total_tokens == sum(
        e.response["usage"]["total_tokens"] for e in exchanges if e.response)
    assert max(e.response["usage"]["prompt_tokens"] for e in exchanges if e.response
               ) <= MAX_PROMPT_TOKENS
    assert set(incident.usage.by_specialist) >= set(incident.specialists)


def test_tools_offered_to_a_specialist_are_only_its_own(
        tmp_path: Path, server: ScriptedServer,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    seen = len(server.exchanges)
    loop = make_loop(model_settings(tmp_path / "w", server))
    try:
        run_scenario(loop, "memory_leak", 7, lambda _m: None)
    finally:
        loop.close()
    for exchange in server.exchanges[seen:]:
        system = exchange.request["messages"][0]["content"]
        offered = {t["function"]["name"] for t in exchange.request.get("tools") or []}
        if "You are the capacity specialist" in system and offered:
            # capacity reads where its load comes from (issue 11): callers, changes, baselines
            assert offered == {"run_runbook_checks", "metric_stat", "metric_change",
                               "metric_trend", "log_search", "log_classes", "service_info",
                               "dependency_health", "callers_report", "recent_deploys",
                               "changes_before", "traffic_origin"}


def test_approval_then_narrative_usage_and_show_table(
        tmp_path: Path, server: ScriptedServer, capsys: pytest.CaptureFixture[str],
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    settings = model_settings(tmp_path / "w", server)
    loop = make_loop(settings)
    try:
        incident = run_scenario(loop, "bad_deploy", 7, lambda _m: None).incidents[0]
        [request] = loop.pending()
        # the resume happens in a fresh handle: usage recorded so far must survive it
        loop.close()
        loop = make_loop(settings)
        done = loop.decide(request.id, Verdict.APPROVE, "alice", "go")
    finally:
        loop.close()
    assert done.status.value == "mitigated"
    purposes = [c.purpose for c in done.usage.calls]
    assert purposes.count("specialist") == len(incident.usage.calls)
    assert purposes.count("narrative") == 1
    text = Path(done.postmortem_path or "").read_text()
    assert "written by scripted" in text
    assert "## Timeline" in text and "rollback_deploy(checkout" in text

    assert main(["show", done.id, "--work-dir", str(settings.work_dir)]) == 0
    out = capsys.readouterr().out
    assert "Model usage" in out and "narrative" in out and "total" in out
