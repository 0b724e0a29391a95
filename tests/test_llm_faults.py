"""Faults on the model path: every one ends in a finished or waiting incident, with the
retries and fallbacks written into the record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from llm_server import model_settings, policy_outcome

from opsloop.graph.runner import OperateLoop
from opsloop.llm.testing import Fault, ScriptedServer
from opsloop.models import Incident
from opsloop.settings import Settings
from opsloop.watch import run_scenario

INCIDENT = "You are the incident specialist"
# bad_deploy offline: SEV1, rollback of checkout waits for a human.
EXPECTED = {
    "status": "awaiting_approval", "severity": "SEV1", "root_cause": ("bad_deploy", "checkout"),
    "actions": ["rollback_deploy(checkout, to_version=2.13.2)"],
    "decisions": [("needs_approval", "remediation.yaml:severities.SEV1")], "results": [],
    "verified": None,
}


Run = Callable[..., Incident]


@pytest.fixture
def run(tmp_path: Path, make_loop: Callable[[Settings], OperateLoop]) -> Run:
    """`run(server, **settings)`: bad_deploy round the loop on the scripted model."""
    def go(server: ScriptedServer, **settings: object) -> Incident:
        loop = make_loop(model_settings(tmp_path / "w", server, **settings))
        try:
            return run_scenario(loop, "bad_deploy", 7, lambda _m: None).incidents[0]
        finally:
            loop.close()
    return go


def kinds(incident: Incident, specialist: str = "incident") -> list[str]:
    return [e.kind for e in incident.timeline if e.data.get("specialist") == specialist]


def incident_diagnosis(incident: Incident) -> str:
    return next(d.reasoner for d in incident.diagnoses if d.specialist == "incident")


# A 500 on a structured request steps down a format level instead of being retried
# (tests/test_llm_format_fallback.py): real servers answer format trouble with one.
@pytest.mark.parametrize("status", [429, 502, 503])
def test_a_transient_http_error_is_retried(run: Run, status: int) -> None:
    with ScriptedServer() as server:
        server.script(Fault.http(status, match=INCIDENT))
        incident = run(server)
    assert policy_outcome(incident) == EXPECTED
    assert incident_diagnosis(incident) == "model"
    assert "model_retry" in kinds(incident)
    retried = [e.message for e in incident.timeline if e.kind == "model_retry"]
    assert f"{status}" in retried[0] and "attempt 2 of 4" in retried[0]
    assert incident.usage.by_specialist["incident"].retries == 1


def test_a_timeout_is_retried(run: Run) -> None:
    with ScriptedServer() as server:
        server.script(Fault("slow", seconds=1.5, match=INCIDENT))
        incident = run(server, llm_timeout_seconds=0.5)
    assert policy_outcome(incident) == EXPECTED
    assert any("Timeout" in e.message for e in incident.timeline if e.kind == "model_retry")


def test_a_dropped_connection_is_retried(run: Run) -> None:
    with ScriptedServer() as server:
        server.script(Fault("drop", match=INCIDENT))
        incident = run(server)
    assert policy_outcome(incident) == EXPECTED
    assert "model_retry" in kinds(incident)


def test_retries_that_run_out_hand_over_to_the_offline_reasoner(run: Run) -> None:
    with ScriptedServer() as server:
        server.script(*[Fault.http(503, match=INCIDENT) for _ in range(3)])
        incident = run(server, llm_max_retries=2)
    assert policy_outcome(incident) == EXPECTED
    assert incident_diagnosis(incident) == "fallback"
    assert kinds(incident).count("model_retry") == 2
    assert "model_fallback" in kinds(incident)
    [failed] = [c for c in incident.usage.calls if c.outcome == "error"]
    assert failed.attempts == 3 and "503" in failed.error


def test_garbage_gets_one_repair(run: Run) -> None:
    with ScriptedServer() as server:
        server.script(Fault("garbage", match="tool_call_id"))  # a final answer turn
        incident = run(server)
    assert policy_outcome(incident) == EXPECTED
    assert "model_repair" in [e.kind for e in incident.timeline]
    assert {d.reasoner for d in incident.diagnoses} == {"model"}
    assert [c.outcome for c in incident.usage.calls].count("invalid") == 1


def test_garbage_twice_hands_over_to_the_offline_reasoner(run: Run) -> None:
    with ScriptedServer() as server:
        server.script(Fault("garbage", match=INCIDENT), Fault("garbage", match=INCIDENT))
        incident = run(server)
    assert policy_outcome(incident) == EXPECTED
    assert incident_diagnosis(incident) == "fallback"
    handovers = [k for k in kinds(incident) if k in ("model_repair", "model_fallback")]
    assert handovers == ["model_repair", "model_fallback"]


def test_a_body_that_is_not_json_hands_over_to_offline(run: Run) -> None:
    with ScriptedServer() as server:
        server.script(Fault("not_json", match=INCIDENT))
        incident = run(server)
    assert policy_outcome(incident) == EXPECTED
    assert incident_diagnosis(incident) == "fallback"


def test_no_server_at_all_still_finishes_offline(run: Run) -> None:
    with ScriptedServer() as server:
        url = server.url
    incident = run(server, llm_base_url=url, llm_max_retries=1)
    assert policy_outcome(incident) == EXPECTED
    assert {d.reasoner for d in incident.diagnoses} == {"fallback"}


@pytest.mark.filterwarnings("ignore:This model does not support")
def test_a_server_without_json_schema_support_gets_json_mode(run: Run) -> None:
    with ScriptedServer(json_schema=False) as server:
        incident = run(server)
        formats = [(e.request.get("response_format") or {}).get("type")
                   for e in server.exchanges]
    assert policy_outcome(incident) == EXPECTED
    assert {d.reasoner for d in incident.diagnoses} == {"model"}
    assert "json_object" in formats
    assert "model_format" in [e.kind for e in incident.timeline]


@pytest.mark.filterwarnings("ignore:This model does not support")
def test_a_server_without_any_json_mode_gets_the_schema_in_the_prompt(run: Run) -> None:
    with ScriptedServer(json_schema=False, json_object=False) as server:
        incident = run(server)
    assert policy_outcome(incident) == EXPECTED
    assert {d.reasoner for d in incident.diagnoses} == {"model"}


def test_a_spent_token_budget_means_offline_for_who_comes_next(run: Run) -> None:
    with ScriptedServer() as server:
        incident = run(server, llm_tokens_per_incident=1)
    assert policy_outcome(incident) == EXPECTED
    # the first calls spend the budget; every specialist concludes or falls back; the
    # incident still reaches the same decision
    assert incident.usage.total.calls <= 6
    assert any(e.kind in ("model_limit", "model_fallback") for e in incident.timeline)
