"""`opsloop simulate`: a simulated stretch of production with its incidents and reviews.

The slow tests run eight simulated days once (about 40 s) through the CLI, then check what a
week of operations must leave behind: every incident finished, the Monday review written
once with its charts, no scheduled run doubled, agents' findings recorded.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.cli import simulate as simulate_cmd
from opsloop.cli.render import Ui, UserError
from opsloop.models import ApprovalRequest, DecisionOutcome, PolicyDecision, Verdict
from opsloop.models.actions import RemediationAction
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulate import CATALOG, OnCall, plan_faults
from opsloop.simulator.server import FAULT_KINDS
from opsloop.simulator.state import START
from opsloop.store import IncidentStore

DAYS = 8


def parser() -> argparse.ArgumentParser:
    """opsloop's own parser, with `simulate` registered if cli/main.py does not yet."""
    main = importlib.import_module("opsloop.cli.main")
    built: argparse.ArgumentParser = main.build_parser()
    sub = next(a for a in built._actions if isinstance(a, argparse._SubParsersAction))
    if "simulate" not in sub.choices:
        simulate_cmd.register(sub, main._common())
    return built


def run_cli(argv: list[str], work: Path) -> int:
    args = parser().parse_args(["simulate", *argv])
    handler: Any = args.handler
    code: int = handler(args, Settings(work_dir=work), Ui())
    return code


# the plan and the on-call: fast ----------------------------------------------------------


def test_the_fault_plan_is_seeded_and_spreads_kinds_over_services() -> None:
    plan = plan_faults(7, 35, START)
    assert plan == plan_faults(7, 35, START)
    assert plan != plan_faults(8, 35, START)
    assert len({f.name for f in plan}) == len(plan) >= 6
    assert len({f.service for f in plan}) >= 5
    assert all(e[1] in FAULT_KINDS for f in plan for e in f.events)
    assert all(START + timedelta(days=1) <= f.at < START + timedelta(days=35) for f in plan)
    assert [f.at for f in plan] == sorted(f.at for f in plan)
    short = plan_faults(7, DAYS, START)
    assert len(short) >= 2 and set(f.name for f in short) <= set(CATALOG)


def _request(action: str, at: datetime) -> ApprovalRequest:
    return ApprovalRequest(
        id="APR-1", incident_id="INC-0001",
        action=RemediationAction(id="a1", type=action, service="payments", params={}),
        decision=PolicyDecision(action_id="a1", outcome=DecisionOutcome.NEEDS_APPROVAL, rule="r"),
        severity="SEV1", summary="", requested_at=at)


def test_the_oncall_answers_after_a_delay_longer_at_night_and_rejects_its_kind() -> None:
    oncall = OnCall(day_delay_minutes=15, night_delay_minutes=45,
                    reject={"failover": "wait it out"})
    day = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
    night = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    assert not oncall.due(_request("restart", day), day + timedelta(minutes=14))
    assert oncall.due(_request("restart", day), day + timedelta(minutes=15))
    assert not oncall.due(_request("restart", night), night + timedelta(minutes=30))
    assert oncall.due(_request("restart", night), night + timedelta(minutes=45))
    assert oncall.verdict(_request("failover", day)) == (Verdict.REJECT, "wait it out")
    assert oncall.verdict(_request("restart", day))[0] is Verdict.APPROVE


def test_simulate_refuses_a_work_dir_that_already_holds_state(tmp_path: Path) -> None:
    work = tmp_path / "work"
    IncidentStore(Settings(work_dir=work).state_dir / "opsloop.db").close()
    with pytest.raises(UserError, match="fresh --work-dir"):
        run_cli(["--days", "1"], work)
    with pytest.raises(UserError, match="--days"):
        run_cli(["--days", "0"], tmp_path / "other")


# eight simulated days: slow ----------------------------------------------------------------


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("simulate") / "work"
    code = run_cli(["--days", str(DAYS), "--seed", "7", "--json"], work)
    summary = json.loads((work / "reports" / "simulation.json").read_text("utf-8"))
    assert code == 0, summary
    return work, summary


@pytest.mark.slow
def test_incidents_open_and_every_one_finishes(week: tuple[Path, dict[str, Any]]) -> None:
    work, summary = week
    store = IncidentStore(Settings(work_dir=work).state_dir / "opsloop.db")
    try:
        opened = [i for i in store.incidents() if i.anomalies]
        assert len(opened) >= 2
        assert store.unfinished() == []
        assert store.pending() == []
    finally:
        store.close()
    assert summary["unfinished"] == [] and summary["errors"] == []
    assert summary["days"] == DAYS and len(summary["per_day"]) == DAYS
    # The on-call answered as sim-oncall, and rejected the kind its policy rejects.
    assert summary["approvals"], "no approval was asked for in eight days"
    assert all(a["verdict"] == ("rejected" if a["action"].startswith("failover") else
                                "approved") for a in summary["approvals"])


def _mondays_at_eight(start: datetime, days: int) -> list[datetime]:
    first = start.replace(hour=8, minute=0)
    candidates = [first + timedelta(days=d) for d in range(days + 1)]
    return [c for c in candidates if c.weekday() == 0 and start < c <= start + timedelta(days)]


@pytest.mark.slow
def test_the_weekly_health_review_runs_once_per_monday_with_its_charts(
        week: tuple[Path, dict[str, Any]]) -> None:
    work, summary = week
    ledger = RunLedger(Settings(work_dir=work).state_dir / "schedule.db")
    try:
        runs = ledger.history("health-review", limit=100)
    finally:
        ledger.close()
    mondays = _mondays_at_eight(datetime.fromisoformat(summary["start"]), DAYS)
    assert mondays  # eight days from a Monday 09:00 pass one Monday 08:00
    assert sorted(r.due_at for r in runs) == mondays
    assert all(r.status == "succeeded" and r.trigger == "schedule" for r in runs)
    for monday in mondays:
        year, wk, _ = (monday - timedelta(days=1)).isocalendar()
        base = work / "reports" / f"health-{year}-W{wk:02d}"
        assert base.with_suffix(".md").read_text("utf-8").startswith("# Health-target review")
        assert list(base.parent.glob(f"{base.name}-*.png"))


@pytest.mark.slow
def test_no_scheduled_run_is_doubled_and_each_daily_one_ran_each_day(
        week: tuple[Path, dict[str, Any]]) -> None:
    work, _ = week
    ledger = RunLedger(Settings(work_dir=work).state_dir / "schedule.db")
    try:
        runs = ledger.history(limit=10_000)
    finally:
        ledger.close()
    doubled = [k for k, n in Counter((r.agent, r.due_at) for r in runs).items() if n > 1]
    assert doubled == []
    assert Counter(r.agent for r in runs)["alert-quality"] == DAYS  # 06:15, every day
    assert all(r.status == "succeeded" for r in runs), [(r.run_id, r.error) for r in runs]


@pytest.mark.slow
def test_the_agents_left_findings_and_reports(week: tuple[Path, dict[str, Any]]) -> None:
    work, summary = week
    ledger = RunLedger(Settings(work_dir=work).state_dir / "schedule.db")
    try:
        runs = ledger.history(limit=10_000)
    finally:
        ledger.close()
    with_findings = {r.agent for r in runs if r.findings}
    assert {"health-review", "signal-triage"} <= with_findings
    assert all(r.reports for r in runs)  # every run, findings or not, wrote its report
    assert all(Path(p).exists() for r in runs for p in r.reports)
    assert any(Path(p).name.startswith("signals-") for p in summary["reports"])
