"""The monthly cost review on a simulated week: a runaway autoscaler's days stand out, with the
change near them, the incident that fixed it and the saving it measured; nothing invented for
the days the telemetry does not hold."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.models import (
    ActionCase,
    Approval,
    DecisionOutcome,
    Hypothesis,
    Incident,
    IncidentStatus,
    MetricSeries,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    Verdict,
)
from opsloop.policy import Policies
from opsloop.scheduled.agents.cost_review import (
    CostLimits,
    CostReview,
    closed_month,
    findings_of,
    review,
)
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState
from opsloop.simulator.events import schedule
from opsloop.store import IncidentStore

DUE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FIXED_AT = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def week() -> tuple[SimState, Incident]:
    """cost_runaway from 09:20 on Nov 2 (after an HPA config deploy) until an approved
    scale_in at 12:00 on Nov 3, then six quiet days; and the incident that recorded it."""
    env = SimEnvironment.create("cost_runaway", 7)
    schedule(env.state, 19, "deploy", "recommendations", version="1.8.4-hpa", kind="config",
             author="infra-bot")
    env.wait(int((FIXED_AT - env.now()).total_seconds() // 60))
    action = RemediationAction(id="a1", type="scale_in", service="recommendations",
                               params={"replicas": 8})
    result = env.execute(action, "k1")
    env.wait(6 * 1440)
    opened = datetime(2026, 11, 2, 9, 31, tzinfo=UTC)
    incident = Incident(
        id="INC-0001", title="recommendations spend 5x", environment="sim:test",
        group_key="g1", services=["recommendations"], opened_at=opened,
        status=IncidentStatus.MITIGATED,
        root_cause=Hypothesis(id="h1", cause="autoscaler runaway", category="cost_runaway",
                              service="recommendations", runbook="cost-anomaly",
                              confidence=0.9),
        actions=[ActionCase(
            proposal=RemediationProposal(action=action, specialist="cost", hypothesis_id="h1",
                                         confidence=0.9),
            decision=PolicyDecision(action_id="a1", outcome=DecisionOutcome.NEEDS_APPROVAL,
                                    rule="remediation.yaml:actions.scale_in.outcome.SEV3"),
            requested_at=opened,
            approval=Approval(request_id="r1", verdict=Verdict.APPROVE, by="sre",
                              at=FIXED_AT - timedelta(minutes=1)),
            result=result)])
    return env.state, incident


@pytest.fixture
def run(week: tuple[SimState, Incident], tmp_path: Path, shipped_policies: Policies
        ) -> Iterator[tuple[AgentContext, SimEnvironment]]:
    state, incident = week
    env = SimEnvironment(copy.deepcopy(state))
    store = IncidentStore(tmp_path / "work" / "state" / "opsloop.db")
    store.save_incident(incident)
    ctx = AgentContext(run_id="run-1", agent="cost-review", due_at=DUE, now=env.now(),
                       settings=Settings(work_dir=tmp_path / "work"), policies=shipped_policies,
                       telemetry=env, store=store)
    yield ctx, env
    store.close()


def analyse(ctx: AgentContext) -> tuple[Analysis, dict[str, Any]]:
    agent = CostReview()
    observed = json.loads(json.dumps(agent.observe(ctx)))  # what a checkpoint keeps
    analysis = agent.analyse(ctx, observed)
    return analysis, json.loads((ctx.reports_dir / "cost-2026-11.json").read_text())


def test_the_runaway_days_are_the_anomalies_with_their_change_and_what_was_done(
        run: tuple[AgentContext, SimEnvironment]) -> None:
    ctx, _ = run
    analysis, report = analyse(ctx)

    assert [(a["service"], a["day"], a["direction"]) for a in report["anomalies"]] == [
        ("recommendations", "2026-11-02", "up"), ("recommendations", "2026-11-03", "up")]
    first = report["anomalies"][0]
    assert first["baseline_usd_per_hour"] == pytest.approx(2.8, rel=0.01)
    assert [c["what"] for c in first["changes"]] == ["config 1.8.4-hpa (was 1.8.3) by infra-bot"]
    assert [i["id"] for i in first["incidents"]] == ["INC-0001"]
    (episode,) = report["episodes"]  # two days of one runaway: one thing to look at
    assert (episode["first"], episode["last"], episode["days"]) == (
        "2026-11-02", "2026-11-03", 2)
    assert [f.kind for f in analysis.findings] == ["cost_anomaly"]
    assert "INC-0001" in analysis.findings[0].evidence
    assert analysis.proposals == []  # findings only

    (saving,) = report["savings"]
    assert (saving["incident"], saving["taken"], saving["approval"]) == (
        "INC-0001", True, "approved by sre")
    # 40 -> 8 replicas at $0.35/h each: $11.20/h less, measured from the metric.
    assert saving["usd_per_hour_before"] == pytest.approx(14.0, rel=0.01)
    assert saving["usd_per_hour_after"] == pytest.approx(2.8, rel=0.01)
    assert saving["saved_usd_per_month"] == pytest.approx(11.2 * 720, rel=0.01)
    assert [i["id"] for i in report["incidents"]] == ["INC-0001"]


def test_spend_is_what_was_recorded_and_the_report_says_how_much(
        run: tuple[AgentContext, SimEnvironment]) -> None:
    ctx, env = run
    _, report = analyse(ctx)

    november = [p for p in env.metric("checkout", "cost_per_hour", 20_000).points
                if p.at >= datetime(2026, 11, 1, tzinfo=UTC)]
    row = next(r for r in report["services"] if r["service"] == "checkout")
    assert row["spend"] == pytest.approx(sum(p.value for p in november) / 60, abs=0.01)
    assert row["minutes"] == len(november)
    assert row["coverage"] == pytest.approx(len(november) / (30 * 1440), abs=1e-4)
    assert row["previous_usd_per_hour"] is None and row["change_pct"] is None  # no October
    md = (ctx.reports_dir / "cost-2026-11.md").read_text()
    assert "24% of 2026-11, 0% of the month before" in md
    assert "nothing is extrapolated" in md
    assert (ctx.reports_dir / "cost-2026-11.png").read_bytes().startswith(PNG)


def test_a_rerun_for_the_same_month_replaces_its_reports(
        run: tuple[AgentContext, SimEnvironment]) -> None:
    ctx, _ = run
    first, _ = analyse(ctx)
    again, _ = analyse(ctx)
    assert first.reports == again.reports
    assert sorted(p.name for p in ctx.reports_dir.iterdir()) == [
        "cost-2026-11.json", "cost-2026-11.md", "cost-2026-11.png"]


def _observed(hours: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    return {"month": "2026-11", "previous": "2026-10-01T00:00:00+00:00",
            "start": "2026-11-01T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00",
            "now": "2026-12-01T09:00:00+00:00", "read_minutes": 0, "changes": [],
            "incidents": [], "services": {s: {"hours": h, "error": None}
                                          for s, h in hours.items()}}


def _flat(start: datetime, days: int, rate: float, grow: float = 0.0) -> dict[str, list[float]]:
    """Every hour fully recorded at `rate` $/h, rising `grow` $/h per day."""
    return {(start + timedelta(hours=h)).isoformat(): [rate + grow * (h // 24), 60]
            for h in range(days * 24)}


def test_month_over_month_change_and_slope_are_reported_as_trends() -> None:
    october, november = closed_month(DUE)[0], closed_month(DUE)[1]
    grows = {**_flat(october, 31, 1.0), **_flat(november, 30, 1.5, grow=0.01)}
    steady = {**_flat(october, 31, 2.0), **_flat(november, 30, 2.0)}
    report = review(_observed({"grows": grows, "steady": steady}), CostLimits())

    rows = {r["service"]: r for r in report["services"]}
    assert rows["grows"]["change_pct"] == pytest.approx(64.5, abs=0.1)  # 1.645 vs 1.0 $/h
    assert rows["grows"]["slope_usd_per_day"] == pytest.approx(0.24, abs=1e-3)  # 0.01 x 24
    assert rows["steady"]["change_pct"] == 0.0 and rows["steady"]["slope_usd_per_day"] == 0.0
    # The step up is one episode from its first day, until the trailing baseline has taken
    # in the new level; the growth after that is the trend finding's, not a daily anomaly.
    assert {a["service"] for a in report["anomalies"]} == {"grows"}
    (episode,) = report["episodes"]
    assert (episode["service"], episode["first"]) == ("grows", "2026-11-01")
    assert "2026-11-03" <= episode["last"] < "2026-11-30"
    kinds = sorted((f.kind, f.subject) for f in findings_of(report))
    assert kinds == [("cost_anomaly", "grows"), ("cost_trend", "grows")]
    assert closed_month(datetime(2027, 1, 15, tzinfo=UTC))[1:] == (
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


class _BrokenCost:
    """Metrics whose cost series for `web` cannot be read (an exporter gone missing)."""

    def __init__(self, inner: SimEnvironment) -> None:
        self.inner = inner

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        if service == "web":
            raise KeyError("no series cost_per_hour{service='web'}")
        return self.inner.metric(service, metric, minutes)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        return self.inner.average(service, metric, minutes)


def test_a_series_that_cannot_be_read_is_named_and_the_rest_reported(
        run: tuple[AgentContext, SimEnvironment]) -> None:
    ctx, env = run
    broken = dataclasses.replace(ctx, telemetry=env.swap(metrics=_BrokenCost(env)))
    _, report = analyse(broken)
    rows = {r["service"]: r for r in report["services"]}
    assert "no series cost_per_hour" in rows["web"]["error"] and rows["web"]["minutes"] == 0
    assert rows["checkout"]["error"] is None and rows["checkout"]["minutes"] > 0
    assert len(report["anomalies"]) == 2
    assert "web (error: KeyError" in (ctx.reports_dir / "cost-2026-11.md").read_text()


def test_a_month_without_data_says_so_and_where_the_data_is(
        tmp_path: Path, shipped_policies: Policies) -> None:
    env = SimEnvironment.create("bad_deploy", 7)  # Nov 2 09:00: the review closes October
    store = IncidentStore(tmp_path / "opsloop.db")
    ctx = AgentContext(run_id="run-1", agent="cost-review", due_at=env.now(), now=env.now(),
                       settings=Settings(work_dir=tmp_path / "work"),
                       policies=shipped_policies, telemetry=env, store=store)
    agent = CostReview()
    analysis = agent.analyse(ctx, agent.observe(ctx))
    store.close()
    md = (ctx.reports_dir / "cost-2026-10.md").read_text()
    assert "No cost data was recorded for this period." in md
    assert "holds 121 minute(s) after 2026-10" in md
    assert analysis.findings == []
    assert (ctx.reports_dir / "cost-2026-10.png").read_bytes().startswith(PNG)
