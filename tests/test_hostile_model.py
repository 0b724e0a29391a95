"""Hostile models: whatever an endpoint returns, every incident finishes within the loop's
caps, the offline reasoner takes over, and severity and policy decide exactly as offline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from llm_server import model_settings

from opsloop.agents.ask import answer, answer_offline
from opsloop.agents.ask_records import Records
from opsloop.agents.narrative import narrate
from opsloop.agents.postmortem import draft_postmortem
from opsloop.graph.runner import OperateLoop
from opsloop.llm.client import ModelClient, reply_chars, reply_chars_accepted
from opsloop.llm.config import build_chat_model
from opsloop.llm.testing import Hostile, ScriptedServer
from opsloop.llm.toolloop import ANSWER_ONLY, Limits
from opsloop.models import Incident, IncidentStatus
from opsloop.settings import Settings
from opsloop.watch import run_scenario

STEPS, RETRIES = 3, 1  # small caps keep the suite quick; the bound below follows them
HANG_TIMEOUT = 0.25  # seconds: the request timeout for modes that never answer
WALL_SECONDS = 60.0  # a hang guard, not a performance target
# bad_deploy: SEV1, waits for a human, as it does offline (quick; runs by default).
# flag_rollout_errors: SEV2, runs its fix and writes a postmortem, so the narrative loop too.
HANGS = {Hostile.STALL, Hostile.TRICKLE}


def settings_for(work: Path, server: ScriptedServer, mode: Hostile) -> Settings:
    return model_settings(work, server, llm_max_steps=STEPS, llm_max_retries=RETRIES,
                          llm_retry_max_seconds=0.2,
                          llm_timeout_seconds=HANG_TIMEOUT if mode in HANGS else 5.0)


def call_bound(settings: Settings) -> int:
    """HTTP requests an incident may cost at most: every loop (its specialists, then the
    postmortem narrative) at its call cap, every call at its attempt cap."""
    loops = settings.max_specialists + 1
    calls = Limits(settings.llm_max_steps, settings.llm_max_tool_calls,
                   settings.llm_tool_output_chars).max_calls
    return loops * calls * (settings.llm_max_retries + 1)


def decided(incident: Incident) -> dict[str, Any]:
    """Severity and every policy decision, by action type."""
    return {
        "status": incident.status.value,
        "severity": incident.severity.value if incident.severity else None,
        "severity_rule": incident.severity_rule,
        "decisions": sorted((c.action.type, c.decision.outcome.value, c.decision.rule)
                            for c in incident.actions if c.decision is not None),
    }


def run(settings: Settings, scenario: str) -> Incident:
    loop = OperateLoop(settings)
    try:
        return run_scenario(loop, scenario, 7, lambda _m: None).incidents[0]
    finally:
        loop.close()


@pytest.fixture(scope="session")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Incident]:
    """Each scenario run offline once for the whole session."""
    work = tmp_path_factory.mktemp("offline")
    done: dict[str, Incident] = {}

    def get(scenario: str) -> Incident:
        if scenario not in done:
            done[scenario] = run(Settings(work_dir=work / scenario), scenario)
        return done[scenario]

    return get


@dataclass(frozen=True)
class HostileRun:
    incident: Incident
    settings: Settings
    requests: int  # as the server counted them
    seconds: float


HostileRuns = Callable[[Hostile, str], HostileRun]


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> HostileRuns:
    """Each (mode, scenario) run once for the whole session, whichever test asks first."""
    done: dict[tuple[Hostile, str], HostileRun] = {}

    def get(mode: Hostile, scenario: str) -> HostileRun:
        if (mode, scenario) not in done:
            with ScriptedServer(hostile=mode) as server:
                settings = settings_for(tmp_path_factory.mktemp(mode.value), server, mode)
                started = time.monotonic()
                incident = run(settings, scenario)
                seconds = time.monotonic() - started
                done[mode, scenario] = HostileRun(incident, settings, len(server.exchanges),
                                                  seconds)
        return done[mode, scenario]

    return get


def check_bounded_fallback(got: HostileRun, offline: Incident, mode: Hostile) -> None:
    incident = got.incident
    assert incident.status is not IncidentStatus.OPEN
    assert decided(incident) == decided(offline)
    assert 0 < got.requests <= call_bound(got.settings)
    assert got.seconds < WALL_SECONDS
    assert {d.reasoner for d in incident.diagnoses} == {"fallback"}
    fallbacks = [e for e in incident.timeline if e.kind == "model_fallback"]
    assert len(fallbacks) == len(incident.diagnoses)
    # every loop ends on a rejected call that says why; an "ok" call is a tool call that
    # was answered, or, in no_tools mode only, a narrative (well-formed prose) that was used
    failed = [c for c in incident.usage.calls if c.outcome != "ok"]
    assert failed and all(c.error for c in failed)
    if mode is not Hostile.NO_TOOLS:
        assert all(c.outcome != "ok" for c in incident.usage.calls if c.purpose == "narrative")


@pytest.mark.parametrize("mode", list(Hostile))
def test_every_hostile_model_leaves_a_sev1_waiting_for_a_human_as_offline(
        hostile_run: HostileRuns, offline_run: Callable[[str], Incident], mode: Hostile
        ) -> None:
    got = hostile_run(mode, "bad_deploy")
    assert got.incident.status is IncidentStatus.AWAITING_APPROVAL
    check_bounded_fallback(got, offline_run("bad_deploy"), mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(Hostile))
def test_every_hostile_model_ends_a_sev2_offline_with_the_same_decisions(
        hostile_run: HostileRuns, offline_run: Callable[[str], Incident], mode: Hostile
        ) -> None:
    got = hostile_run(mode, "flag_rollout_errors")
    check_bounded_fallback(got, offline_run("flag_rollout_errors"), mode)
    # the postmortem narrative loop ran too, unless a giant reply spent the budget first
    usage = got.incident.usage
    assert any(c.purpose == "narrative" for c in usage.calls) or (
        usage.total.total_tokens >= got.settings.llm_tokens_per_incident)


# What each misbehaviour costs and how it ends, pinned where the numbers are exact.

def client_for(tmp_path: Path, server: ScriptedServer, mode: Hostile) -> ModelClient:
    settings = settings_for(tmp_path, server, mode)
    chat = build_chat_model(settings)
    assert chat is not None
    return ModelClient(chat, settings)


@pytest.mark.parametrize("mode", [Hostile.ALWAYS_TOOLS, Hostile.UNKNOWN_TOOLS,
                                  Hostile.REPEAT_TOOLS, Hostile.BAD_ARGUMENTS])
def test_a_narrative_model_that_only_calls_tools_gets_one_repair_then_the_draft_stands(
        tmp_path: Path, offline_run: Callable[[str], Incident], mode: Hostile) -> None:
    finished = offline_run("bad_deploy")
    draft = draft_postmortem(finished)
    with ScriptedServer(hostile=mode) as server:
        client = client_for(tmp_path, server, mode)
        assert narrate(draft, finished, client) == draft
        assert len(server.exchanges) == 2  # the answer, the repair: then the draft
        assert all("tools" not in e.request for e in server.exchanges)
    calls = client.ledger.calls(finished.id)
    assert [c.outcome for c in calls] == ["invalid", "invalid"]
    assert "tools were not offered" in calls[-1].error


@pytest.mark.parametrize("mode", [m for m in Hostile if m is not Hostile.NO_TOOLS])
def test_ask_falls_back_to_the_records_answer_within_its_cap(
        tmp_path: Path, offline_run: Callable[[str], Incident], mode: Hostile) -> None:
    records = Records.load([offline_run("bad_deploy")], tmp_path / "pm", tmp_path / "sig")
    question = "why did checkout fail?"
    with ScriptedServer(hostile=mode) as server:
        client = client_for(tmp_path, server, mode)
        got = answer(question, records, client)
        requests = len(server.exchanges)
    assert got == answer_offline(question, records)
    assert 0 < requests <= ANSWER_ONLY.max_calls * (client.settings.llm_max_retries + 1)


def fallback_notes(incident: Incident) -> list[str]:
    return [e.message for e in incident.timeline if e.kind == "model_fallback"]


def test_429_waits_as_long_as_retry_after_asks(hostile_run: HostileRuns) -> None:
    got = hostile_run(Hostile.RATE_LIMITED, "bad_deploy")
    incident = got.incident
    retried = [e.message for e in incident.timeline if e.kind == "model_retry"]
    assert retried and all("Retry-After 0.05s" in m for m in retried)
    assert got.requests == 2 * len(incident.diagnoses)  # one retry each, then offline


def test_503_asking_for_an_hour_is_not_waited_for(hostile_run: HostileRuns) -> None:
    got = hostile_run(Hostile.UNAVAILABLE, "bad_deploy")
    incident = got.incident
    assert got.requests == len(incident.diagnoses)  # no retry at all
    assert not [e for e in incident.timeline if e.kind == "model_retry"]
    assert all("3600s" in n and "not waiting" in n for n in fallback_notes(incident))


def test_a_giant_reply_is_refused_and_still_counted(hostile_run: HostileRuns) -> None:
    got = hostile_run(Hostile.GIANT, "bad_deploy")
    incident = got.incident
    # refused at once, no repair asked; its tokens may spend the budget of who comes next
    assert 1 <= got.requests <= len(incident.diagnoses)
    over = f"over the {reply_chars_accepted(got.settings):,} accepted"
    notes = fallback_notes(incident)
    assert any(over in n for n in notes)
    assert all(over in n or "budget is spent" in n for n in notes)
    assert incident.usage.total.output_tokens >= 1_000_000 // 4


def test_a_trickling_reply_is_cut_off_at_the_attempt_deadline(hostile_run: HostileRuns
                                                              ) -> None:
    got = hostile_run(Hostile.TRICKLE, "bad_deploy")
    assert got.requests == (RETRIES + 1) * len(got.incident.diagnoses)
    assert all("AttemptTimedOut" in n for n in fallback_notes(got.incident))


def test_a_stalled_request_times_out_and_is_retried_once(hostile_run: HostileRuns) -> None:
    got = hostile_run(Hostile.STALL, "bad_deploy")
    assert got.requests == (RETRIES + 1) * len(got.incident.diagnoses)
    assert all("Request timed out" in n for n in fallback_notes(got.incident))


def test_an_answer_that_ran_no_tool_is_not_a_diagnosis(hostile_run: HostileRuns) -> None:
    got = hostile_run(Hostile.NO_TOOLS, "bad_deploy")
    incident = got.incident
    assert got.requests == len(incident.diagnoses)  # it answered; the answer rested on nothing
    assert all("without running a single tool" in n for n in fallback_notes(incident))
    assert "restart" not in {c.action.type for c in incident.actions}


def test_reply_size_counts_tool_call_arguments() -> None:
    message = AIMessage(content="", tool_calls=[
        {"name": "echo", "args": {"padding": "x" * 500}, "id": "c1"}])
    assert reply_chars(message) > 500
