"""`opsloop ask` offline: each kind of question answered from real records, citing them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsloop.agents.ask import answer
from opsloop.agents.ask_answers import kind_of
from opsloop.agents.ask_records import Records, parse_query
from opsloop.cli.main import main
from opsloop.graph.runner import OperateLoop
from opsloop.models import Incident, Verdict
from opsloop.settings import Settings
from opsloop.watch import run_scenario


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, make_loop: Callable[[Settings], OperateLoop]
            ) -> Iterator[tuple[Records, Settings]]:
    """Four real incidents: approved (bad_deploy), SEV2 auto (flag), SEV3 auto (leak),
    rejected (cost_runaway)."""
    settings = Settings(work_dir=tmp_path_factory.mktemp("ask") / "work")
    loop = make_loop(settings)
    try:
        first: dict[str, Incident] = {}
        for name in ("bad_deploy", "flag_rollout_errors", "memory_leak", "cost_runaway"):
            first[name] = run_scenario(loop, name, 7, lambda _m: None).incidents[0]
        waiting = {r.incident_id: r for r in loop.pending()}
        loop.decide(waiting[first["bad_deploy"].id].id, Verdict.APPROVE, "alice", "looks right")
        loop.decide(waiting[first["cost_runaway"].id].id, Verdict.REJECT, "bob",
                    "traffic will return tonight")
        records = Records.load(loop.store.incidents(), settings.postmortems_dir,
                               settings.signals_dir, loop.runbooks)
        yield records, settings
    finally:
        loop.close()


def ids(records: Records) -> dict[str, str]:
    """Scenario-ish name -> incident id, found by what the record says (not by order)."""
    out = {}
    for i in records.incidents:
        category = i.root_cause.category if i.root_cause else ""
        out[category] = i.id
    return out


# (question, expected kind, facts the answer must contain, refs it must cite by category)
CASES = [
    ("which incidents were there?", "list", ["HighErrorRate on checkout"], ["bad_deploy"]),
    ("how many incidents were SEV3?", "count", ["1 incident(s)"], ["memory_leak"]),
    ("what severity was the inventory incident?", "severity", ["SEV3"], ["memory_leak"]),
    ("why did checkout fail?", "root_cause", ["bad_deploy", "2.14.0", "flag_rollout"],
     ["bad_deploy", "flag_rollout"]),
    ("what was done about recommendations?", "actions",
     ["scale_in(recommendations", "needs_approval", "rejected by bob"], ["cost_runaway"]),
    ("who approved the checkout rollback?", "approvers", ["alice", "looks right"],
     ["bad_deploy"]),
    ("which proposals were rejected?", "rejections", ["bob", "traffic will return tonight"],
     ["cost_runaway"]),
    ("what is the status of the inventory incident?", "status", ["mitigated"], ["memory_leak"]),
    ("show the timeline of the recommendations incident", "timeline",
     ["triaged", "routed", "decision"], ["cost_runaway"]),
    ("what happened during the recommendations incident?", "summary",
     ["Root cause cost_runaway", "rejected by bob"], ["cost_runaway"]),
    ("why was the inventory incident auto-remediated?", "why_action",
     ["root cause", "memory_leak", "restart(inventory", "policy said auto by rule"],
     ["memory_leak"]),
    ("when did the inventory incident start?", "when", ["opened 2026-11-02"], ["memory_leak"]),
    ("how long did the inventory incident take to mitigate?", "duration",
     ["detected to mitigated"], ["memory_leak"]),
    ("did the fix hold for inventory?", "verification", ["verification passed"],
     ["memory_leak"]),
    ("what was the impact on checkout?", "impact", ["error ratio", "tier 1"], ["bad_deploy"]),
    ("which specialist diagnosed the inventory problem?", "specialist",
     ["diagnosed by remediation"], ["memory_leak"]),
    ("what evidence supports the inventory diagnosis?", "evidence", ["holds"], ["memory_leak"]),
    ("what are the action items from the checkout postmortem?", "postmortem",
     ["Action item"], ["bad_deploy"]),
    ("what lessons did we learn about checkout?", "lessons", ["What went well"],
     ["bad_deploy"]),
    ("what did we learn this week?", "lessons", ["What went wrong: "], ["bad_deploy"]),
    ("was anything rolled back?", "rollback", ["rollback_deploy(checkout"], ["bad_deploy"]),
    ("who was paged for checkout?", "notifications", ["page"], ["bad_deploy"]),
    ("what did policy decide for checkout?", "decisions", ["rollback_deploy", "disable_flag"],
     ["bad_deploy", "flag_rollout"]),
    ("which service had the most incidents?", "top_services", ["checkout: 2 incident(s)"], []),
]


@pytest.mark.parametrize(("question", "kind", "facts", "cited"), CASES,
                         ids=[c[1] for c in CASES])
def test_answers_each_kind_of_question_from_the_records(
        history: tuple[Records, Settings], question: str, kind: str, facts: list[str],
        cited: list[str]) -> None:
    records, _ = history
    result = answer(question, records)
    assert result.kind == kind
    for fact in facts:
        assert fact in result.text, f"{fact!r} missing from: {result.text}"
    refs = {c.ref.split("#")[0].removeprefix("postmortem:") for c in result.citations}
    for category in cited:
        assert ids(records)[category] in refs
    assert result.answered_by == "records"


def test_at_least_fifteen_kinds_are_covered() -> None:
    assert len({c[1] for c in CASES}) >= 15


def test_a_pending_approval_is_found_before_anyone_decides(
        tmp_path: Path, make_loop: Callable[[Settings], OperateLoop]) -> None:
    settings = Settings(work_dir=tmp_path / "work")
    loop = make_loop(settings)
    try:
        incident = run_scenario(loop, "dependency_outage", 7, lambda _m: None).incidents[0]
        records = Records.load(loop.store.incidents(), settings.postmortems_dir,
                               settings.signals_dir)
    finally:
        loop.close()
    result = answer("what is waiting for a human?", records)
    assert result.kind == "pending"
    assert "failover(payments" in result.text and incident.id in result.text


def test_a_runbook_question_cites_the_runbook(history: tuple[Records, Settings]) -> None:
    result = answer("which runbook covers a memory leak?", history[0])
    assert result.kind == "runbook"
    assert "runbook:memory-leak" in [c.ref for c in result.citations]


def test_last_night_with_nothing_in_it_says_so_and_offers_the_nearest(
        history: tuple[Records, Settings]) -> None:
    records, _ = history
    query = parse_query("why did checkout fail last night?", records)
    assert query.window is not None and query.window.label.startswith("last night")
    result = answer("why did checkout fail last night?", records)
    assert result.text.startswith("No matching incident last night")
    assert "flag_rollout" in result.text  # the most recent checkout incident, cited
    assert len(result.citations) == 1


def test_an_unknown_incident_is_named_in_the_answer(history: tuple[Records, Settings]) -> None:
    result = answer("what was the root cause of INC-9999?", history[0])
    assert result.text == "No incident in the records matches INC-9999."
    assert result.citations == []


def test_kinds_are_recognised_from_ordinary_wording() -> None:
    assert kind_of("Why did payments go down?") == "root_cause"
    assert kind_of("who approved INC-0004") == "approvers"
    assert kind_of("How many SEV1 incidents this week?") == "count"


def test_cli_answers_in_json_and_refuses_an_empty_question(
        history: tuple[Records, Settings], capsys: pytest.CaptureFixture[str]) -> None:
    _, settings = history
    work = str(settings.work_dir)
    assert main(["ask", "who approved the checkout rollback?", "--json",
                 "--work-dir", work]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "approvers" and "alice" in out["text"]
    assert out["citations"][0]["kind"] == "approval"
    assert main(["ask", "  ", "--work-dir", work]) == 1
    assert "question is empty" in capsys.readouterr().err


def test_why_an_action_ran_gives_the_cause_and_the_rule_not_only_one(
        history: tuple[Records, Settings]) -> None:
    records, _ = history
    flag = ids(records)["flag_rollout"]
    result = answer(f"why was {flag} auto-remediated?", records)
    assert result.kind == "why_action"
    first, *rest = result.text.splitlines()
    assert first.startswith(f"{flag}: root cause ") and "flag_rollout" in first
    assert any("disable_flag(checkout" in line and "policy said auto by rule remediation.yaml"
               in line for line in rest)
    assert {c.kind for c in result.citations} == {"incident", "decision"}


def test_what_we_learned_lists_lessons_not_incidents(history: tuple[Records, Settings]) -> None:
    result = answer("what did we learn this week?", history[0])
    lines = result.text.splitlines()
    assert lines and all(" — What went " in line or " — Where we got lucky" in line
                         for line in lines), lines
    assert not any("opened" in line for line in lines)  # not the incident list
    assert all(c.kind == "postmortem" for c in result.citations)


def test_an_empty_queue_is_an_answer(history: tuple[Records, Settings]) -> None:
    records, _ = history  # every approval in this history has been answered
    assert not any(i.status.value == "awaiting_approval" for i in records.incidents)
    result = answer("which incidents are waiting for me?", records)
    assert result.kind == "pending"
    assert result.text == "None: no incident is waiting for a human decision."
    on_checkout = answer("is anything on checkout waiting for approval?", records)
    assert on_checkout.text.startswith("None: no incident is waiting for a human decision "
                                       "among the 2 matching incident(s)")


def test_what_happened_summarises_each_incident_in_a_line(
        history: tuple[Records, Settings]) -> None:
    records, _ = history
    result = answer("what happened to checkout?", records)
    assert result.kind == "summary"
    lines = result.text.splitlines()
    assert len(lines) == 2  # checkout's two incidents, one line each
    deploy = next(line for line in lines if line.startswith(ids(records)["bad_deploy"]))
    assert "Root cause bad_deploy on checkout" in deploy and "approved by alice" in deploy
    assert "Outcome: mitigated after" in deploy
    assert not any(" triaged: " in line or " routed: " in line for line in lines)
