"""Planned activity marked ahead, from the CLI and the API: recorded with who and when in the
one marks file the cost agent reads, and what it changes in the agent's decision.

The answer key is test_cost_agent.py's planned migration: search runs twice its replicas from
10:00 Monday, an anomaly the cost agent raises unless a mark covers it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from test_cost_agent import MIGRATION, fleet, report, run_agent

from opsloop.api.app import create_app
from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.cli.main import main
from opsloop.environments import new_simulation, remote_ref
from opsloop.policy import Policies
from opsloop.scheduled.agents import cost_planned
from opsloop.scheduled.agents.cost import feedback_path
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.server import SimServer

DAY = 24 * 60
READ, APPROVE = "read-token-0123456789abcdef", "approve-token-0123456789abcdef"
TOKENS = f"viewer:read:{READ},ana:approve:{APPROVE}"


def cli(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str
        ) -> tuple[int, str, str]:
    code = main(["cost", "planned", *argv, "--work-dir", str(settings.work_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def test_planned_activity_added_from_the_cli_keeps_the_migration_from_being_raised(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, shipped_policies: Policies,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_USER", "dana")
    settings = Settings(work_dir=tmp_path / "work")
    code, out, err = cli(capsys, settings, "add", "--service", "search", "--region", "primary",
                         "--from", "2026-11-02T09:30:00Z", "--to", "2026-11-05T00:00:00Z",
                         "--reason", "search cluster migration CHG-1234", "--json")
    assert code == 0, err
    mark = json.loads(out)
    assert (mark["service"], mark["region"], mark["usage_type"]) == ("search", "primary", None)
    assert mark["by"] == "dana" and mark["id"].startswith("plan-")
    assert mark["start"] == "2026-11-02T09:30:00+00:00" and mark["at"]  # recorded when
    stored = json.loads(feedback_path(settings).read_text())
    assert stored[mark["id"]]["why"] == "search cluster migration CHG-1234"
    # The first day's run: the doubled spend is listed as planned, nothing raised.
    first = run_agent(fleet(5, 8 * 60, "bad_deploy", MIGRATION), settings, shipped_policies)
    (found,) = report(first)["anomalies"]
    assert found["start"].startswith("2026-11-02T10:00")
    assert found["decision"]["action"] == "planned_activity" and first.findings == []
    assert found["feedback"]["id"] == mark["id"]
    md = next(p for p in first.reports if p.endswith(".md"))
    assert (f"`{mark['id']}` search (region primary, usage type all) from 2026-11-02 09:30 to "
            f"2026-11-05 00:00, by dana: search cluster migration CHG-1234") in \
        Path(md).read_text()
    # Listed, then removed: the same run raises it.
    code, out, _ = cli(capsys, settings, "list", "--json")
    assert [m["id"] for m in json.loads(out)] == [mark["id"]]
    code, out, _ = cli(capsys, settings, "list")
    assert "search cluster migration CHG-1234" in out and "dana" in out
    code, out, _ = cli(capsys, settings, "remove", mark["id"])
    assert code == 0 and f"removed {mark['id']}" in out
    again = run_agent(fleet(5, 8 * 60, "bad_deploy", MIGRATION), settings, shipped_policies)
    assert [f.subject for f in again.findings] == ["search primary replica-hours"]


def test_a_mark_for_other_dimensions_or_another_time_covers_nothing(
        tmp_path: Path, shipped_policies: Policies) -> None:
    settings = Settings(work_dir=tmp_path / "work")
    at = datetime(2026, 11, 2, 8, tzinfo=UTC)
    for service, region, start, end in (
            ("search", "eu-west-1", "2026-11-02T09:00Z", "2026-11-03T00:00Z"),  # other region
            ("web", None, "2026-11-02T09:00Z", "2026-11-03T00:00Z"),  # other service
            ("search", None, "2026-11-02T11:00Z", "2026-11-03T00:00Z")):  # after it began
        cost_planned.add_planned(feedback_path(settings), service=service, region=region,
                                 start=datetime.fromisoformat(start),
                                 end=datetime.fromisoformat(end), why="other", by="ops", at=at)
    analysis = run_agent(fleet(5, 8 * 60, "bad_deploy", MIGRATION), settings, shipped_policies)
    assert [f.subject for f in analysis.findings] == ["search primary replica-hours"]


def test_bad_input_is_a_clear_error_and_a_non_zero_exit(
        capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.close()
    base = ["--service", "search", "--reason", "migration"]
    cases = [
        (["--from", "monday", "--to", "2026-11-05T00:00Z"], "--from 'monday': not an ISO 8601"),
        (["--from", "2026-11-02T10:00", "--to", "2026-11-05T00:00Z"], "give a time zone"),
        (["--from", "2026-11-05T00:00Z", "--to", "2026-11-02T10:00Z"],
         "to 2026-11-02T10:00:00+00:00 is not after from 2026-11-05T00:00:00+00:00"),
    ]
    for times, message in cases:
        code, _, err = cli(capsys, settings, "add", *base, *times)
        assert code == 1 and message in err and "Traceback" not in err, err
    code, _, err = cli(capsys, settings, "add", "--service", "serach", "--reason", "x",
                       "--from", "2026-11-02T10:00Z", "--to", "2026-11-05T00:00Z",
                       "--environment", ref)
    assert code == 1 and "service 'serach': production has no such service" in err
    assert "search" in err  # what it does have
    code, _, err = cli(capsys, settings, "remove", "plan-nope")
    assert code == 1 and "no planned-activity mark 'plan-nope'" in err
    assert not feedback_path(settings).exists() or json.loads(
        feedback_path(settings).read_text()) == {}
    feedback_path(settings).write_text("{not json")
    code, _, err = cli(capsys, settings, "list")
    assert code == 1 and "unreadable" in err and "Traceback" not in err


def test_concurrent_marks_all_land(settings: Settings) -> None:
    path = feedback_path(settings)
    at = datetime(2026, 11, 2, tzinfo=UTC)
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            if i % 4 == 0:  # answers to reported anomalies, through the same file
                cost_planned.mark_planned(path, {"id": f"cost-web-{i}", "start": at.isoformat(),
                                                 "service": "web", "region": "primary",
                                                 "usage_type": "replica-hours"},
                                          by=f"p{i}", why="expected", at=at)
            else:
                cost_planned.add_planned(path, service=f"svc-{i}", start=at,
                                         end=at.replace(day=3), why="expected", by=f"p{i}",
                                         at=at)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    marks = cost_planned.list_planned(path)
    assert len(marks) == 24 and {m["by"] for m in marks} == {f"p{i}" for i in range(24)}
    assert not list(path.parent.glob(".cost-feedback.json.*.tmp"))


@pytest.fixture
def api(settings: Settings, shipped_policies: Policies) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, shipped_policies)
    app = create_app(runtime, load_tokens(settings), names=frozenset({"testserver"}))
    try:
        with TestClient(app) as client:
            yield client
    finally:
        runtime.close_unstarted()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


MARK = {"service": "search", "start": "2026-11-02T09:30:00Z", "end": "2026-11-05T00:00:00Z",
        "reason": "search cluster migration CHG-1234"}


def test_planned_activity_over_the_api_as_the_callers_identity(api: TestClient) -> None:
    assert api.get("/api/v1/cost/planned", headers=auth(READ)).json() == []
    added = api.post("/api/v1/cost/planned", json=MARK, headers=auth(APPROVE))
    assert added.status_code == 201, added.text
    mark = added.json()
    assert (mark["by"], mark["service"], mark["region"]) == ("ana", "search", None)
    listed = api.get("/api/v1/cost/planned", headers=auth(READ)).json()
    assert [m["id"] for m in listed] == [mark["id"]]
    # A reader may look, not mark or remove.
    assert api.post("/api/v1/cost/planned", json=MARK, headers=auth(READ)).status_code == 403
    assert api.delete(f"/api/v1/cost/planned/{mark['id']}",
                      headers=auth(READ)).status_code == 403
    assert api.post("/api/v1/cost/planned", json=MARK).status_code == 401
    removed = api.delete(f"/api/v1/cost/planned/{mark['id']}", headers=auth(APPROVE))
    assert removed.status_code == 200 and removed.json()["id"] == mark["id"]
    gone = api.delete(f"/api/v1/cost/planned/{mark['id']}", headers=auth(APPROVE))
    assert gone.status_code == 404 and "no planned-activity mark" in gone.json()["detail"]
    assert api.get("/api/v1/cost/planned", headers=auth(READ)).json() == []


@pytest.mark.parametrize(("change", "loc"), [
    ({"end": "2026-11-01T00:00:00Z"}, "body"),  # end before start
    ({"start": "2026-11-02T09:30:00"}, "body.start"),  # no time zone
    ({"start": "monday"}, "body.start"),
    ({"reason": ""}, "body.reason"),
    ({"service": None}, "body.service"),
    ({"by": "mallory"}, "body.by"),  # who is the caller, never the body
])
def test_a_bad_planned_activity_body_is_422_naming_the_field(
        api: TestClient, change: dict[str, Any], loc: str) -> None:
    answer = api.post("/api/v1/cost/planned", json={**MARK, **change}, headers=auth(APPROVE))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == loc
    assert api.get("/api/v1/cost/planned", headers=auth(READ)).json() == []


def test_with_production_known_an_unknown_service_is_refused(
        settings: Settings, shipped_policies: Policies) -> None:
    server = SimServer(SimEnvironment.create("bad_deploy", 7), hold_scenario=True).start()
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, shipped_policies, remote_ref(server.url))
    app = create_app(runtime, load_tokens(settings), names=frozenset({"testserver"}))
    try:
        with TestClient(app) as client:
            wrong = client.post("/api/v1/cost/planned", json={**MARK, "service": "serach"},
                                headers=auth(APPROVE))
            assert wrong.status_code == 422
            assert wrong.json()["detail"][0]["loc"] == "body.service"
            assert "production has no such service" in wrong.json()["detail"][0]["msg"]
            right = client.post("/api/v1/cost/planned", json=MARK, headers=auth(APPROVE))
            assert right.status_code == 201
    finally:
        runtime.close_unstarted()
        server.stop()
