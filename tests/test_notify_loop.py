"""Notifications from the real loop, and policies/notifications.yaml's checks at start."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_notify_receiver import Receiver, serve, wait_for

from opsloop.graph.runner import OperateLoop
from opsloop.models import IncidentStatus, Severity, Verdict
from opsloop.policy import Policies, PolicyError, load_policies
from opsloop.policy.schema import NotificationsPolicy
from opsloop.settings import Settings
from opsloop.tools.runbook_index import RunbookIndex
from opsloop.watch import run_scenario

KEY_ENV = "OPSLOOP_TEST_PAGERDUTY_KEY"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def paging_loop(tmp_path: Path, receiver: Receiver, shipped_policies: Policies,
                runbook_index: RunbookIndex, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[OperateLoop]:
    """The shipped policies, with PagerDuty on for `page`, pointed at the loopback receiver."""
    monkeypatch.setenv(KEY_ENV, "R0UTING")
    notifications = NotificationsPolicy.model_validate({
        "version": 1,
        "delivery": {"attempts": 3, "timeout_seconds": 2, "backoff_initial_seconds": 0.01,
                     "backoff_max_seconds": 0.05, "drain_seconds_at_exit": 0},
        "pagerduty": {"oncall": {"enabled": True, "routing_key_env": KEY_ENV,
                                 "events_url": receiver.base + "/v2/enqueue"}},
        "routes": {"page": ["oncall"]},
    })
    policies = shipped_policies.model_copy(update={"notifications": notifications})
    settings = Settings(work_dir=tmp_path / "work", public_url="http://console.test/")
    loop = OperateLoop(settings, policies, runbook_index)
    try:
        yield loop
    finally:
        loop.notifier.close()
        loop.close()


def test_pagerduty_resolves_when_the_paged_incident_is_mitigated(
        paging_loop: OperateLoop, receiver: Receiver) -> None:
    incident = run_scenario(paging_loop, "bad_deploy", seed=7,
                            progress=lambda _m: None).incidents[0]
    assert incident.severity is Severity.SEV1  # severity.yaml pages on SEV1
    assert wait_for(lambda: len(receiver.at("/v2/enqueue")) == 1)
    [request] = paging_loop.pending()
    final = paging_loop.decide(request.id, Verdict.APPROVE, "alice", "roll it back")
    assert final.status is IncidentStatus.MITIGATED
    assert wait_for(lambda: len(receiver.at("/v2/enqueue")) == 2)
    trigger, resolve = (r.json() for r in receiver.at("/v2/enqueue"))
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == incident.id
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == f"{incident.id} SEV1: {incident.title}"
    assert trigger["client_url"] == f"http://console.test/incidents/{incident.id}"
    assert resolve == {"routing_key": "R0UTING", "event_action": "resolve",
                       "dedup_key": incident.id}
    assert any(n.startswith("page via") and n.endswith("and to oncall")
               for n in final.notifications)


def test_a_rejected_incident_stays_open_in_pagerduty(paging_loop: OperateLoop,
                                                    receiver: Receiver) -> None:
    run_scenario(paging_loop, "bad_deploy", seed=7, progress=lambda _m: None)
    [request] = paging_loop.pending()
    final = paging_loop.decide(request.id, Verdict.REJECT, "alice", "not this")
    assert final.status is IncidentStatus.REJECTED
    assert paging_loop.notifier.drain(5)
    assert [r.json()["event_action"] for r in receiver.at("/v2/enqueue")] == ["trigger"]


def test_the_shipped_policy_sends_nothing_off_the_machine(shipped_policies: Policies) -> None:
    plan = shipped_policies.notifications.plan(environ={})
    assert plan.targets == {}
    assert plan.backends_for("page") == ()


def _policies_with(tmp_path: Path, notifications: str) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(Settings().policies_dir, folder)
    (folder / "notifications.yaml").write_text(notifications)
    return folder


def test_an_enabled_backend_without_its_variable_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSLOOP_TEST_SLACK_URL", raising=False)
    folder = _policies_with(tmp_path, "version: 1\nslack:\n  ops:\n    enabled: true\n"
                            "    url_env: OPSLOOP_TEST_SLACK_URL\nroutes:\n  page: [ops]\n")
    with pytest.raises(PolicyError) as raised:
        OperateLoop(Settings(work_dir=tmp_path / "work", policies_dir=folder))
    text = str(raised.value)
    assert "notifications.yaml" in text and "slack.ops.url_env" in text
    assert "OPSLOOP_TEST_SLACK_URL is not set" in text
    monkeypatch.setenv("OPSLOOP_TEST_SLACK_URL", "http://127.0.0.1:9/hook")
    loop = OperateLoop(Settings(work_dir=tmp_path / "work", policies_dir=folder))
    try:
        assert loop.notifier.plan.backends_for("page") == ("ops",)
    finally:
        loop.notifier.close()
        loop.close()


@pytest.mark.parametrize(("text", "field", "words"), [
    ("version: 1\nroutes:\n  page: [nobody]\n", "routes", "page: unknown backend 'nobody'"),
    ("version: 1\nslack:\n  ops: {url_env: X, url_envv: X}\n", "slack.ops.url_envv",
     "unknown field"),
    ("version: 1\nslack:\n  ops: {url_env: 'not a name'}\n", "slack.ops.url_env", "pattern"),
    ("version: 1\nemail:\n  m: {host: h, from: a@b.c, to: []}\n", "email.m.to", "at least 1"),
    ("version: 1\nemail:\n  m: {host: h, from: a@b.c, to: [x@y.z], username: u}\n",
     "email.m", "username and password_env go together"),
    ("version: 1\nslack:\n  x: {url_env: A}\nwebhook:\n  x: {url_env: A, secret_env: B}\n",
     "(file)", "used by both slack and webhook"),
])
def test_bad_notification_policies_are_named_by_file_and_field(
        tmp_path: Path, text: str, field: str, words: str) -> None:
    folder = _policies_with(tmp_path, text)
    with pytest.raises(PolicyError) as raised:
        load_policies(folder)
    [problem] = [p for p in raised.value.problems if p.file.endswith("notifications.yaml")]
    assert problem.field == ("" if field == "(file)" else field)
    assert words in str(problem)
