"""Each notification backend against a real server on loopback: exact payloads, signatures,
retries, a backend that never answers, SMTP, and a restart that resumes a pending delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from test_notify_receiver import Receiver, serve, wait_for

from opsloop.tools.notifications import (
    DeliveryPlan,
    DeliveryState,
    EmailTarget,
    Notifications,
    PagerDutyTarget,
    RetryPlan,
    SlackTarget,
    Spool,
    Target,
    WebhookTarget,
)

FAST = RetryPlan(attempts=4, timeout_seconds=2.0, backoff_initial_seconds=0.01,
                 backoff_max_seconds=0.05, drain_seconds_at_exit=0)
CONSOLE = "https://ops.example.test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


def notifier(tmp_path: Path, targets: list[Target], routes: dict[str, tuple[str, ...]],
             retry: RetryPlan = FAST, start: bool = True,
             public_url: str | None = CONSOLE) -> Notifications:
    plan = DeliveryPlan({t.name: t for t in targets}, routes, retry)
    return Notifications(tmp_path / "notifications.jsonl", tmp_path / "state" / "n.db", plan,
                         public_url=public_url, start=start)


def states(n: Notifications) -> dict[str, str]:
    assert n.spool is not None
    return {d.backend: d.state.value for d in n.spool.list()}


def settled(n: Notifications) -> bool:
    """Every delivery finished, one way or the other."""
    assert n.spool is not None
    return all(d.state in (DeliveryState.SENT, DeliveryState.FAILED) for d in n.spool.list())


def test_slack_gets_block_kit_with_the_facts_and_console_links(tmp_path: Path,
                                                               receiver: Receiver) -> None:
    n = notifier(tmp_path, [SlackTarget("ops", receiver.base + "/slack")], {"#ops": ("ops",)})
    try:
        where = n.notify("#ops", "INC-0007 SEV2: ran disable_flag <new-checkout> under rule-a",
                         {"incident": "INC-0007", "rule": "sev2-auto", "approval": "APR-3"},
                         key="INC-0007:k:#ops")
        assert wait_for(lambda: len(receiver.at("/slack")) == 1)
    finally:
        n.close()
    assert where.endswith(", and to ops") and "notifications.jsonl" in where
    body = receiver.at("/slack")[0].json()
    assert body == {
        "text": "INC-0007 SEV2: ran disable_flag <new-checkout> under rule-a",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Incident INC-0007 (SEV2)"}},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "INC-0007 SEV2: ran disable_flag &lt;new-checkout&gt; under rule-a"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Incident*\nINC-0007"},
                {"type": "mrkdwn", "text": "*Severity*\nSEV2"},
                {"type": "mrkdwn", "text": "*Rule*\nsev2-auto"},
                {"type": "mrkdwn", "text": "*Channel*\n#ops"}]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Review approvals"},
                 "url": f"{CONSOLE}/approvals", "style": "primary"},
                {"type": "button", "text": {"type": "plain_text", "text": "Open incident"},
                 "url": f"{CONSOLE}/incidents/INC-0007"}]},
        ],
    }
    assert receiver.at("/slack")[0].headers["Content-Type"] == "application/json"
    # The outbox is still the record, written whatever the other backends do.
    line = json.loads((tmp_path / "notifications.jsonl").read_text())
    assert line["channel"] == "#ops" and line["key"] == "INC-0007:k:#ops"


def test_slack_without_a_public_url_has_no_links(tmp_path: Path, receiver: Receiver) -> None:
    n = notifier(tmp_path, [SlackTarget("ops", receiver.base + "/slack")], {"*": ("ops",)},
                 public_url=None)
    try:
        n.notify("agents", "scheduled agent cost failed", {"agent": "cost"}, key="r1:failed")
        assert wait_for(lambda: len(receiver.at("/slack")) == 1)
    finally:
        n.close()
    blocks = receiver.at("/slack")[0].json()["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section"]
    assert blocks[0]["text"]["text"] == "opsloop: agents"


def test_pagerduty_trigger_then_resolve_share_the_incident_dedup_key(
        tmp_path: Path, receiver: Receiver) -> None:
    pd = PagerDutyTarget("oncall", "R0UTINGKEY", receiver.base + "/v2/enqueue", "opsloop")
    n = notifier(tmp_path, [pd], {"page": ("oncall",)})
    try:
        n.notify("page", "INC-0001 SEV1: checkout errors", {"incident": "INC-0001"},
                 key="INC-0001:triage:page")
        assert wait_for(lambda: len(receiver.at("/v2/enqueue")) == 1)
        n.notify("page", "INC-0001 mitigated: checkout errors",
                 {"incident": "INC-0001", "severity": "SEV1", "lifecycle": "resolve"},
                 key="INC-0001:learn:resolve")
        assert wait_for(lambda: len(receiver.at("/v2/enqueue")) == 2)
    finally:
        n.close()
    trigger, resolve = (r.json() for r in receiver.at("/v2/enqueue"))
    assert trigger == {
        "routing_key": "R0UTINGKEY", "event_action": "trigger", "dedup_key": "INC-0001",
        "payload": {"summary": "INC-0001 SEV1: checkout errors", "severity": "critical",
                    "source": "opsloop",
                    "custom_details": {"channel": "page", "incident": "INC-0001"}},
        "client": "opsloop", "client_url": f"{CONSOLE}/incidents/INC-0001",
    }
    assert resolve == {"routing_key": "R0UTINGKEY", "event_action": "resolve",
                       "dedup_key": "INC-0001"}


def test_webhook_is_signed_over_timestamp_and_raw_body(tmp_path: Path,
                                                      receiver: Receiver) -> None:
    hook = WebhookTarget("events", receiver.base + "/hook", "s3cret")
    n = notifier(tmp_path, [hook], {"*": ("events",)})
    try:
        n.notify("#incidents", "INC-0002 SEV1: payments down", {"incident": "INC-0002"},
                 key="INC-0002:triage:#incidents")
        assert wait_for(lambda: len(receiver.at("/hook")) == 1)
    finally:
        n.close()
    got = receiver.at("/hook")[0]
    stamp = got.headers["X-Opsloop-Timestamp"]
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Opsloop-Signature"] == f"sha256={expected}"
    assert abs(int(stamp) - time.time()) < 60
    wrong = hmac.new(b"other", stamp.encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Opsloop-Signature"] != f"sha256={wrong}"
    body = got.json()
    assert got.headers["X-Opsloop-Delivery"] == str(body["id"])
    assert {k: body[k] for k in ("key", "channel", "message", "data", "lifecycle",
                                 "console_url")} == {
        "key": "INC-0002:triage:#incidents", "channel": "#incidents",
        "message": "INC-0002 SEV1: payments down", "data": {"incident": "INC-0002"},
        "lifecycle": "trigger", "console_url": f"{CONSOLE}/incidents/INC-0002"}


def test_500_then_429_then_success_is_retried_to_sent(tmp_path: Path,
                                                     receiver: Receiver) -> None:
    receiver.scripts["/slack"] = [500, 429, 200]
    n = notifier(tmp_path, [SlackTarget("ops", receiver.base + "/slack")], {"#ops": ("ops",)})
    try:
        n.notify("#ops", "INC-0003 SEV2: hello", {"incident": "INC-0003"}, key="k3")
        assert wait_for(lambda: settled(n))
    finally:
        n.close()
    assert n.spool is not None
    [d] = n.spool.list()
    assert d.state is DeliveryState.SENT and d.attempts == 3 and d.last_error is None
    bodies = [r.body for r in receiver.at("/slack")]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same message each time


def test_a_dead_backend_fails_alone_and_never_blocks_the_caller(tmp_path: Path,
                                                               receiver: Receiver) -> None:
    receiver.hang["/slow"] = 1.0  # past the attempt's time limit, every time
    retry = RetryPlan(attempts=2, timeout_seconds=0.5, backoff_initial_seconds=0.01,
                      backoff_max_seconds=0.02, drain_seconds_at_exit=0)
    targets: list[Target] = [
        WebhookTarget("slow", receiver.base + "/slow", "k"),
        PagerDutyTarget("gone", "K", receiver.base + "/missing", "opsloop"),
        SlackTarget("ops", receiver.base + "/slack")]
    receiver.scripts["/missing"] = [404]
    n = notifier(tmp_path, targets, {"page": ("slow", "gone", "ops")}, retry=retry)
    try:
        began = time.monotonic()
        for i in range(3):
            n.notify("page", f"INC-000{i} SEV1: x", {"incident": f"INC-000{i}"}, key=f"p{i}")
        # Waiting for the network would take 3 x 0.5 s at least: the loop never does.
        assert time.monotonic() - began < 1.0
        assert wait_for(lambda: len(receiver.at("/slack")) == 3, seconds=5)
        assert wait_for(lambda: settled(n), seconds=15)
    finally:
        n.close()
    assert n.spool is not None
    by_backend: dict[str, list[Any]] = {}
    for d in n.spool.list():
        by_backend.setdefault(d.backend, []).append(d)
    assert {d.state for d in by_backend["ops"]} == {DeliveryState.SENT}
    assert {d.state for d in by_backend["slow"]} == {DeliveryState.FAILED}
    assert all("attempt 2/2" in d.last_error and "timed out" in d.last_error.lower()
               for d in by_backend["slow"])
    # A 404 is the request's fault: no retry, failed at once with the receiver's answer.
    assert all(d.state is DeliveryState.FAILED and d.attempts == 1
               and "HTTP 404" in d.last_error for d in by_backend["gone"])
    assert len(receiver.at("/missing")) == 3


def test_the_same_key_is_delivered_once(tmp_path: Path, receiver: Receiver) -> None:
    n = notifier(tmp_path, [SlackTarget("ops", receiver.base + "/slack")], {"#ops": ("ops",)})
    try:
        for _ in range(3):  # a replayed graph step notifies again under its key
            n.notify("#ops", "INC-0004 SEV2: once", {"incident": "INC-0004"}, key="INC-0004:x")
        assert wait_for(lambda: settled(n))
        time.sleep(0.2)
    finally:
        n.close()
    assert len(receiver.at("/slack")) == 1
    assert len((tmp_path / "notifications.jsonl").read_text().splitlines()) == 3  # no ledger


def test_a_restart_resumes_a_pending_delivery_exactly_once(tmp_path: Path,
                                                          receiver: Receiver) -> None:
    target = SlackTarget("ops", receiver.base + "/slack")
    first = notifier(tmp_path, [target], {"#ops": ("ops",)}, start=False)  # dies before sending
    first.notify("#ops", "INC-0005 SEV2: queued", {"incident": "INC-0005"}, key="k5")
    assert states(first) == {"ops": "pending"} and receiver.at("/slack") == []
    again = notifier(tmp_path, [target], {"#ops": ("ops",)})  # the next process
    try:
        assert wait_for(lambda: settled(again))
        time.sleep(0.3)
    finally:
        again.close()
    third = notifier(tmp_path, [target], {"#ops": ("ops",)})
    time.sleep(0.3)
    third.close()
    assert len(receiver.at("/slack")) == 1
    assert states(third) == {"ops": "sent"}


_SHORT_COMMAND = """
import sys
from pathlib import Path
from opsloop.tools.notifications import DeliveryPlan, Notifications, RetryPlan, SlackTarget
work = Path(sys.argv[1])
plan = DeliveryPlan({"ops": SlackTarget("ops", sys.argv[2])}, {"#ops": ("ops",)},
                    RetryPlan(attempts=2, timeout_seconds=2, drain_seconds_at_exit=5))
n = Notifications(work / "notifications.jsonl", work / "n.db", plan)
n.notify("#ops", "INC-0013 SEV2: approved from the CLI", {"incident": "INC-0013"}, key="k13")
"""  # and the process ends at once, as `opsloop approve` does


def test_a_short_command_delivers_before_it_exits(tmp_path: Path, receiver: Receiver) -> None:
    import sys

    subprocess.run([sys.executable, "-c", _SHORT_COMMAND, str(tmp_path),
                    receiver.base + "/slack"], check=True, timeout=30)
    assert len(receiver.at("/slack")) == 1
    assert [d.state for d in Spool(tmp_path / "n.db").list()] == [DeliveryState.SENT]


def test_two_processes_never_claim_the_same_delivery(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    for i in range(200):
        Spool(path).enqueue(f"k{i}", "page", "m", {}, ("b",))
    claimed: list[int] = []

    def drain() -> None:
        spool = Spool(path)  # its own connection, as another process would have
        while batch := spool.claim("b", lease_seconds=60):
            claimed.extend(d.id for d in batch)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 200 and len(set(claimed)) == 200


def test_notifiers_on_one_spool_share_one_worker_per_backend(tmp_path: Path,
                                                             receiver: Receiver) -> None:
    target = SlackTarget("ops", receiver.base + "/slack")
    before = threading.active_count()
    many = [notifier(tmp_path, [target], {"#ops": ("ops",)}) for _ in range(20)]
    try:
        assert threading.active_count() - before == 1  # the API builds a loop per request
        many[7].notify("#ops", "INC-0012 SEV2: shared", {"incident": "INC-0012"}, key="k12")
        assert wait_for(lambda: len(receiver.at("/slack")) == 1)
    finally:
        for n in many:
            n.close()
    assert wait_for(lambda: threading.active_count() == before, seconds=5)


def test_retry_sends_a_failed_delivery_again(tmp_path: Path, receiver: Receiver) -> None:
    receiver.scripts["/slack"] = [400, 200]
    n = notifier(tmp_path, [SlackTarget("ops", receiver.base + "/slack")], {"#ops": ("ops",)},
                 start=False)
    n.notify("#ops", "INC-0006 SEV2: retry me", {"incident": "INC-0006"}, key="k6")
    assert n.spool is not None
    [d] = n.spool.list()
    failed = n.retry_now(d.id)
    assert failed is not None and failed.state is DeliveryState.FAILED
    assert failed.last_error is not None and "HTTP 400" in failed.last_error
    sent = n.retry_now(d.id)
    assert sent is not None and sent.state is DeliveryState.SENT
    assert n.retry_now(d.id) == sent  # sent is final: never sent twice
    assert len(receiver.at("/slack")) == 2


class _Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd's start() connects to the port it was given
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_email_reaches_a_real_smtp_server(tmp_path: Path,
                                          smtp: tuple[Controller, _Inbox]) -> None:
    import email

    controller, inbox = smtp
    port = controller.port
    target = EmailTarget("mail", "127.0.0.1", port, "none", None, None,
                         "opsloop@example.test", ("a@example.test", "b@example.test"))
    n = notifier(tmp_path, [target], {"page": ("mail",)})
    try:
        n.notify("page", "INC-0008 SEV1: orders failing", {"incident": "INC-0008"},
                 key="INC-0008:triage:page")
        assert wait_for(lambda: len(inbox.envelopes) == 1)
        assert wait_for(lambda: settled(n))
    finally:
        n.close()
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "opsloop@example.test"
    assert envelope.rcpt_tos == ["a@example.test", "b@example.test"]
    msg = email.message_from_bytes(envelope.content)
    assert msg["Subject"] == "[opsloop] INC-0008 SEV1: orders failing"
    assert msg["To"] == "a@example.test, b@example.test"
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode().replace("\r\n", "\n")
    assert text == ("INC-0008 SEV1: orders failing\n\nIncident: INC-0008\nSeverity: SEV1\n"
                    f"Channel: page\n\nIncident page: {CONSOLE}/incidents/INC-0008\n")
    assert states(n) == {"mail": "sent"}


def test_an_smtp_server_refusing_the_recipient_fails_without_retrying(
        tmp_path: Path, smtp: tuple[Controller, _Inbox]) -> None:
    controller, _ = smtp
    port = controller.port
    # STARTTLS against a server that does not offer it: permanent, said so.
    target = EmailTarget("mail", "127.0.0.1", port, "starttls", None, None,
                         "opsloop@example.test", ("a@example.test",))
    n = notifier(tmp_path, [target], {"page": ("mail",)})
    try:
        n.notify("page", "INC-0009 SEV1: x", {"incident": "INC-0009"}, key="k9")
        assert wait_for(lambda: settled(n))
    finally:
        n.close()
    assert n.spool is not None
    [d] = n.spool.list()
    assert d.state is DeliveryState.FAILED and d.attempts == 1
    assert d.last_error is not None and "STARTTLS" in d.last_error


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"opsloop"
          and auth_data.password == b"pa55")
    return AuthResult(success=ok, handled=False)


def test_email_over_starttls_with_login_checks_the_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), tls_context=tls,
                            require_starttls=True, authenticator=_authenticate,
                            auth_required=True, auth_require_tls=True)
    controller.start()
    trusted = EmailTarget("mail", "127.0.0.1", controller.port, "starttls", "opsloop", "pa55",
                          "opsloop@example.test", ("a@example.test",), ca_file=cert)
    unknown_ca = EmailTarget("strict", "127.0.0.1", controller.port, "starttls", "opsloop",
                             "pa55", "opsloop@example.test", ("a@example.test",))
    n = notifier(tmp_path, [trusted, unknown_ca], {"page": ("mail", "strict")})
    try:
        n.notify("page", "INC-0011 SEV1: over TLS", {"incident": "INC-0011"}, key="k11")
        assert wait_for(lambda: settled(n))
    finally:
        n.close()
        controller.stop()
    assert len(inbox.envelopes) == 1 and inbox.envelopes[0].rcpt_tos == ["a@example.test"]
    assert n.spool is not None
    found = {d.backend: d for d in n.spool.list()}
    assert found["mail"].state is DeliveryState.SENT
    # A certificate the system does not trust is refused, for good, and said so.
    assert found["strict"].state is DeliveryState.FAILED and found["strict"].attempts == 1
    assert "CERTIFICATE_VERIFY_FAILED" in (found["strict"].last_error or "")


def test_unrouted_channels_stay_in_the_outbox_only(tmp_path: Path, receiver: Receiver) -> None:
    n = notifier(tmp_path, [SlackTarget("ops", receiver.base + "/slack")], {"#ops": ("ops",)})
    try:
        where = n.notify("agents", "nothing routed", {}, key="k10")
        time.sleep(0.2)
    finally:
        n.close()
    assert "and to" not in where and receiver.requests == []
    assert isinstance(n.spool, Spool) and n.spool.list() == []
