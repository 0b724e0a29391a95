"""`opsloop notifications list|retry` over a real spool and a loopback Slack receiver."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_notify_receiver import Receiver, serve

from opsloop.api.metrics import notification_deliveries
from opsloop.cli.main import main
from opsloop.policy import load_policies
from opsloop.settings import Settings
from opsloop.tools.notifications import Notifications, Spool


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


def test_a_failed_delivery_is_listed_and_sent_by_retry(
        tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(Settings().policies_dir, folder)
    (folder / "notifications.yaml").write_text(
        "version: 1\ndelivery: {attempts: 1}\nslack:\n  ops:\n    enabled: true\n"
        "    url_env: OPSLOOP_TEST_SLACK_URL\nroutes:\n  '#ops': [ops]\n")
    monkeypatch.setenv("OPSLOOP_TEST_SLACK_URL", receiver.base + "/slack")
    monkeypatch.setenv("OPSLOOP_POLICIES_DIR", str(folder))
    work = tmp_path / "work"
    settings = Settings(work_dir=work, policies_dir=folder)
    plan = load_policies(folder).notifications.plan()
    queued = Notifications(work / "notifications.jsonl", settings.notification_spool, plan,
                           start=False)  # a process that queued and died
    queued.notify("#ops", "INC-0001 SEV2: ran restart", {"incident": "INC-0001"}, key="k1")
    receiver.scripts["/slack"] = [404, 200]
    capsys.readouterr()

    assert main(["notifications", "--work-dir", str(work)]) == 0
    assert "pending" in capsys.readouterr().out
    assert main(["notifications", "retry", "1", "--work-dir", str(work)]) == 1
    assert "failed: attempt 1/1: HTTP 404" in capsys.readouterr().err
    assert main(["notifications", "list", "--state", "failed", "--json",
                 "--work-dir", str(work)]) == 0
    [failed] = json.loads(capsys.readouterr().out)
    assert failed["id"] == 1 and failed["backend"] == "ops" and "HTTP 404" in failed["last_error"]

    assert main(["notifications", "retry", "1", "--work-dir", str(work)]) == 0
    assert "delivery 1 sent to ops" in capsys.readouterr().out
    assert main(["notifications", "retry", "1", "--work-dir", str(work)]) == 1
    assert "it is not sent twice" in capsys.readouterr().err
    assert main(["notifications", "list", "--json", "--work-dir", str(work)]) == 0
    assert [d["state"] for d in json.loads(capsys.readouterr().out)] == ["sent"]
    assert len(receiver.at("/slack")) == 2
    assert main(["notifications", "retry", "9", "--work-dir", str(work)]) == 1
    assert "no delivery 9" in capsys.readouterr().err


def test_deliveries_by_backend_and_state_are_a_metric(tmp_path: Path) -> None:
    path = tmp_path / "state" / "notifications.db"
    assert list(notification_deliveries(path).samples) == []  # no spool, no samples
    spool = Spool(path)
    first, _second = spool.enqueue("k1", "page", "m", {}, ("ops", "oncall"))
    spool.enqueue("k2", "page", "m", {}, ("ops",))
    spool.mark_attempt_failed(first, "HTTP 404", None)
    samples = {(s.labels["backend"], s.labels["state"]): s.value
               for s in notification_deliveries(path).samples}
    assert samples == {("ops", "failed"): 1, ("ops", "pending"): 1, ("oncall", "pending"): 1}
