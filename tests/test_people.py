"""People's verbs on an incident: acknowledge, assign, note, take over, resolve, reopen, and
the re-page while nobody acknowledges; over HTTP, at the store, and in the loop's nodes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from api_support import bearer, work_awaiting_approval
from pydantic import SecretStr
from test_nodes import change_path, opened, proposed, triaged

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.graph.nodes.act import act
from opsloop.graph.nodes.guardrails import guardrails
from opsloop.graph.nodes.verify import verify
from opsloop.graph.people import apply_verb, repage_due
from opsloop.graph.runner import OperateLoop
from opsloop.models import (
    Approval,
    DecisionOutcome,
    EventKind,
    RemediationAction,
    Severity,
    Verdict,
)
from opsloop.models.people import PeopleRefused, PeopleVerb
from opsloop.policy import GuardrailContext, decide, load_policies
from opsloop.settings import Settings
from opsloop.store import IncidentStore
from opsloop.tools.notify import OutboxNotifier

ANA = "ana-approver-token-0123456789abcdef"
RAY = "ray-approver-token-0123456789abcdef"
VIC = "vic-reader-token-0123456789abcdefgh"


@pytest.fixture
def api(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[httpx.Client, str, Path]]:
    settings = Settings(work_dir=tmp_path / "work", api_tokens=SecretStr(
        f"ana:approve:{ANA},ray:approve:{RAY},vic:read:{VIC}"))
    incident_id = work_awaiting_approval(tmp_path_factory, settings.work_dir)
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=60, headers=bearer(ANA)) as client:
        yield client, incident_id, settings.work_dir


def outbox(work: Path) -> list[dict[str, object]]:
    path = work / "notifications.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_people_lifecycle_over_http(api: tuple[httpx.Client, str, Path]) -> None:
    client, incident, work = api
    base = f"/api/v1/incidents/{incident}"
    acked = client.post(f"{base}/acknowledge")
    assert acked.status_code == 200, acked.text
    assert acked.json()["people"]["acknowledged_by"] == "ana"
    again = client.post(f"{base}/acknowledge", headers=bearer(RAY))
    assert again.status_code == 409 and "already acknowledged by ana" in again.json()["detail"]
    assert client.post(f"{base}/assign", json={"assignee": "ray"}).status_code == 200
    assert client.post(f"{base}/notes", json={"text": "checkout 5xx since the deploy"}
                       ).status_code == 200
    assert client.post(f"{base}/notes", json={"text": ""}).status_code == 422
    assert client.post(f"{base}/notes", json={"text": "x", "extra": 1}).status_code == 422
    # Resolving would strand the waiting approval: refused, naming it.
    [waiting] = client.get("/api/v1/approvals").json()
    refused = client.post(f"{base}/resolve")
    assert refused.status_code == 409 and waiting["id"] in refused.json()["detail"]
    no = client.post(f"/api/v1/approvals/{waiting['id']}/reject", json={"reason": "by hand"})
    assert no.status_code == 200, no.text
    assert client.post(f"{base}/resolve", json={"reason": "rolled back by hand"}
                       ).status_code == 200
    room = next((work / "warrooms").glob(f"{incident}*.md")).read_text()
    assert "status: resolved" in room and "closed_at:" in room
    late = client.post(f"{base}/acknowledge", headers=bearer(RAY))
    assert late.status_code == 409 and "reopen it first" in late.json()["detail"]
    assert client.post(f"{base}/reopen").status_code == 200
    state = client.get(f"{base}/people").json()
    assert state["state"] == "acknowledged" and state["assignee"] == "ray"
    assert [e["verb"] for e in state["events"]] == [
        "acknowledge", "assign", "note", "resolve", "reopen"]
    assert all(e["actor"] == "ana" for e in state["events"])
    # Each verb is in the audit log under its person.
    audit = client.get(base).json()["audit"]
    assert [a["kind"] for a in audit if a["kind"].startswith("people.")] == [
        "people.acknowledge", "people.assign", "people.note", "people.resolve", "people.reopen"]
    # The page's backends follow: acknowledge, resolve and the reopen's new trigger, once each.
    told = [(n["data"]["lifecycle"], n["key"]) for n in outbox(work)
            if n["channel"] == "page" and str(n["key"]).startswith(f"{incident}:people:")]
    assert [t[0] for t in told] == ["acknowledge", "resolve", "trigger"]
    assert len({t[1] for t in told}) == 3


def test_people_verbs_need_the_approve_role_and_a_real_incident(
    api: tuple[httpx.Client, str, Path],
) -> None:
    client, incident, _ = api
    base = f"/api/v1/incidents/{incident}"
    assert client.post(f"{base}/acknowledge", headers=bearer(VIC)).status_code == 403
    assert client.get(f"{base}/people", headers=bearer(VIC)).status_code == 200
    assert client.post(f"{base}/takeover", headers={"Authorization": ""}).status_code == 401
    missing = client.post("/api/v1/incidents/INC-9999/acknowledge")
    assert missing.status_code == 404
    assert client.get(f"{base}/people").json()["events"] == []


def test_two_people_acknowledging_at_once_make_one_acknowledgement(
    api: tuple[httpx.Client, str, Path],
) -> None:
    _, incident, work = api
    stores = [IncidentStore(work / "state" / "opsloop.db") for _ in range(8)]
    policies = load_policies(Settings(work_dir=work).policies_dir)
    outcomes: list[str] = []
    gate = threading.Barrier(len(stores))

    def ack(store: IncidentStore, name: str) -> None:
        gate.wait()
        try:
            apply_verb(store, None, policies, incident, PeopleVerb.ACKNOWLEDGE, name)
            outcomes.append("ok")
        except PeopleRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=ack, args=(s, f"p{n}")) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * (len(stores) - 1)
    assert len(stores[0].people.events(incident)) == 1
    for s in stores:
        s.close()


def test_an_unacknowledged_page_is_sent_again_on_policy_time_then_stops(
    api: tuple[httpx.Client, str, Path],
) -> None:
    _, incident_id, work = api
    settings = Settings(work_dir=work)
    policies = load_policies(settings.policies_dir)
    store = IncidentStore(settings.state_dir / "opsloop.db")
    notifier = OutboxNotifier(work / "notifications.jsonl", store)
    incident = store.get_incident(incident_id)
    assert incident.severity is Severity.SEV1
    every = policies.severity.escalation[Severity.SEV1].repage_after_minutes
    assert every is not None
    paged = next(e.at for e in incident.timeline if e.kind is EventKind.ESCALATED)
    assert repage_due(store, notifier, policies, paged + timedelta(minutes=every - 1)) == []
    first = repage_due(store, notifier, policies, paged + timedelta(minutes=every))
    assert [e.verb for e in first] == [PeopleVerb.REPAGE]
    # Asked again at the same moment (another process, a retry): nothing doubled.
    assert repage_due(store, notifier, policies, paged + timedelta(minutes=every)) == []
    assert repage_due(store, notifier, policies, paged + timedelta(minutes=2 * every - 1)) == []
    assert len(repage_due(store, notifier, policies, paged + timedelta(minutes=2 * every))) == 1
    pages = [n for n in outbox(work) if str(n["key"]).startswith(f"{incident_id}:repage:")]
    assert [n["key"] for n in pages] == [f"{incident_id}:repage:1", f"{incident_id}:repage:2"]
    assert "still unacknowledged" in str(pages[0]["message"])
    apply_verb(store, notifier, policies, incident_id, PeopleVerb.ACKNOWLEDGE, "ana")
    assert repage_due(store, notifier, policies, paged + timedelta(hours=5)) == []
    store.close()


def test_a_taken_over_incident_runs_nothing_without_a_human() -> None:
    cleared = GuardrailContext(current_replicas=6)
    restart = RemediationAction(id="a1", type="restart", service="inventory")
    policies = load_policies(Settings().policies_dir)
    assert decide(restart, Severity.SEV4, policies, cleared).outcome is DecisionOutcome.AUTO
    held = decide(restart, Severity.SEV4, policies,
                  GuardrailContext(current_replicas=6, taken_over_by="ana"))
    assert held.outcome is DecisionOutcome.NEEDS_APPROVAL and held.rule == "people:take_over"
    # It only ever tightens: a deny stays a deny.
    drop = RemediationAction(id="a2", type="drop_table", service="postgres")
    assert decide(drop, Severity.SEV4, policies, GuardrailContext(taken_over_by="ana")
                  ).outcome is DecisionOutcome.DENY


def _take_over(loop: OperateLoop, incident_id: str) -> None:
    loop.store.people.apply(incident_id, PeopleVerb.TAKE_OVER, "ana", "", lambda s: None)


def test_the_loop_reads_a_take_over_from_the_store(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "disk_filling")
    _take_over(loop, incident.id)
    purge = RemediationAction(id=f"{incident.id}-r1", type="purge_logs", service="search")
    scratch = change_path(proposed(triaged(incident, rt), purge, "storage"))
    assert scratch.run("guardrails", guardrails, rt) == ("approval",)
    [case] = scratch.incident.actions
    assert case.decision is not None and case.decision.rule == "people:take_over"


def test_a_taken_over_incident_is_not_reverted_under_its_driver(loop: OperateLoop) -> None:
    incident, env, rt = opened(loop, "bad_deploy")
    wrong = RemediationAction(id=f"{incident.id}-w1", type="scale_out", service="checkout",
                              params={"replicas": 12})
    scratch = change_path(proposed(triaged(incident, rt), wrong, "capacity"))
    scratch.run("guardrails", guardrails, rt)
    [case] = scratch.incident.actions
    yes = Approval(request_id=wrong.id, verdict=Verdict.APPROVE, by="test", at=env.now())
    scratch.apply("approval", {"incident": scratch.incident.model_copy(
        update={"actions": [case.model_copy(update={"approval": yes})]})})
    scratch.run("act", act, rt)
    _take_over(loop, incident.id)  # mid-verification, a person takes the wheel
    scratch.run("verify", verify, rt)
    verification = scratch.incident.verification
    assert verification is not None and not verification.passed
    assert not verification.rolled_back
    assert next(s.replicas for s in env.services() if s.name == "checkout") == 12
    kept = [e for e in scratch.incident.timeline if e.kind is EventKind.ROLLBACK]
    assert kept and "ana took the incident over" in kept[-1].message
