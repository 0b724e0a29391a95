"""The weekly health-target review, run against simulated production."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_policy_support import copy_policies, edit

from opsloop import watch
from opsloop.graph.runner import OperateLoop
from opsloop.models import EventKind, Incident, IncidentStatus, Severity, TimelineEvent
from opsloop.policy import load_policies
from opsloop.policy.health import bad_ratio, budget_remaining, budget_state, burn_rate
from opsloop.policy.schema import Policies, Slo
from opsloop.scheduled.agents.health_review import HealthReview, bucket, iso_week
from opsloop.scheduled.base import AgentContext, Analysis, ScheduledAgent
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState
from opsloop.store import IncidentStore

DAY = 24 * 60
WEEK = 7 * DAY


@pytest.fixture(scope="module")
def a_day_after_a_bad_deploy() -> SimState:
    """bad_deploy left alone for a day: checkout (and its callers) burn, the rest is quiet.
    Simulated once per module; each test gets its own copy."""
    env = SimEnvironment.create("bad_deploy", 7)
    env.wait(DAY)
    return env.state


@pytest.fixture
def env(a_day_after_a_bad_deploy: SimState) -> SimEnvironment:
    return SimEnvironment(copy.deepcopy(a_day_after_a_bad_deploy))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    made = IncidentStore(tmp_path / "opsloop.db")
    yield made
    made.close()


@dataclass(frozen=True)
class Reviewed:
    env: SimEnvironment
    observed: dict[str, Any]
    analysis: Analysis
    report: dict[str, Any]  # the JSON report as written


@pytest.fixture(scope="module")
def reviewed(a_day_after_a_bad_deploy: SimState, shipped_policies: Policies,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewed]:
    """One review of that day, for the tests that only read it."""
    env = SimEnvironment(copy.deepcopy(a_day_after_a_bad_deploy))
    work = tmp_path_factory.mktemp("review")
    store = IncidentStore(work / "opsloop.db")
    observed, analysis = review(context(env, store, Settings(work_dir=work), shipped_policies))
    yield Reviewed(env, observed, analysis, json.loads(Path(analysis.reports[1]).read_text()))
    store.close()


def context(env: SimEnvironment, store: IncidentStore, settings: Settings,
            policies: Policies, due_at: datetime | None = None) -> AgentContext:
    return AgentContext(run_id="run-1", agent="health-review", due_at=due_at or env.now(),
                        now=env.now(), settings=settings, policies=policies, telemetry=env,
                        store=store)


def review(ctx: AgentContext) -> tuple[dict[str, Any], Analysis]:
    agent = HealthReview()
    observed = agent.observe(ctx)
    # What observe returns is checkpointed: plain JSON, no NaN.
    observed = json.loads(json.dumps(observed, allow_nan=False))
    return observed, agent.analyse(ctx, observed)


def row_of(observed_or_report: dict[str, Any], slo: str) -> dict[str, Any]:
    return next(r for r in observed_or_report["rows"] if r["slo"] == slo)


def slo_named(policies: Policies, name: str) -> Slo:
    return next(s for s in policies.health.slos if s.name == name)


def test_the_agent_is_a_scheduled_agent_built_without_arguments() -> None:
    agent: ScheduledAgent = HealthReview()
    assert agent.name == "health-review"
    assert agent.purpose and agent.tools


def test_one_row_per_slo_with_the_policy_engines_numbers(
    reviewed: Reviewed, shipped_policies: Policies
) -> None:
    env, observed, analysis = reviewed.env, reviewed.observed, reviewed.analysis
    assert [r["slo"] for r in observed["rows"]] == [s.name for s in shipped_policies.health.slos]
    checkout = slo_named(shipped_policies, "checkout-availability")
    row = row_of(observed, "checkout-availability")
    assert row["budget_remaining"] == pytest.approx(budget_remaining(checkout, env))
    assert row["burn_rate"] == pytest.approx(burn_rate(checkout, env, 60))
    assert row["sli_7d"] == pytest.approx(1 - (bad_ratio(checkout, env, WEEK) or 0))
    assert row["sli_28d"] == pytest.approx(1 - (bad_ratio(checkout, env, 4 * WEEK) or 0))
    # 2.14.0 fails ~30% of orders: a day of that is many times a 28-day 0.1% budget.
    assert row["burn_rate"] > 100
    assert row["budget_remaining"] < 0
    assert analysis.proposals == []
    buckets = {r["slo"]: r["bucket"] for r in reviewed.report["rows"]}
    assert buckets["checkout-availability"] == "Exhausted"
    assert buckets["redis-availability"] == "Healthy"
    assert analysis.summary.startswith(
        f"{sum(b == 'Healthy' for b in buckets.values())} of 9 SLOs healthy")
    assert "checkout" in analysis.summary and "freeze" in analysis.summary


def test_each_services_state_is_the_one_the_guardrails_obey(
    reviewed: Reviewed, shipped_policies: Policies
) -> None:
    env, observed, analysis = reviewed.env, reviewed.observed, reviewed.analysis
    for service, seen in observed["services"].items():
        state = budget_state(service, shipped_policies, env)
        assert (seen["state"], seen["rule"]) == (state.state, state.rule), service
    assert observed["services"]["checkout"]["state"] == "freeze"
    assert observed["services"]["redis"]["state"] == "normal"
    frozen = [f for f in analysis.findings if f.kind == "error_budget_policy"]
    assert {f.subject for f in frozen} == {
        s for s, v in observed["services"].items() if v["state"] != "normal"}
    checkout = next(f for f in frozen if f.subject == "checkout")
    assert checkout.level == "critical"
    assert "health.yaml:error_budget_policy.freeze" in " ".join(checkout.evidence)


def test_a_finding_for_every_slo_outside_healthy_and_none_inside(reviewed: Reviewed) -> None:
    analysis, rows = reviewed.analysis, reviewed.report["rows"]
    unhealthy = {r["slo"] for r in rows if r["bucket"] != "Healthy"}
    assert unhealthy  # the bad deploy put checkout and its callers there
    slo_findings = [f for f in analysis.findings if f.kind.startswith("slo_")]
    assert {f.subject for f in slo_findings} == unhealthy
    worst = slo_findings[0]  # least budget first
    assert worst.subject == "checkout-availability"
    assert "2.14.0" in " ".join(worst.evidence)  # the deploy that spent it, as evidence


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(1.0, "Healthy"), (0.7501, "Healthy"), (0.75, "Observe"), (0.5001, "Observe"),
     (0.5, "Needs attention"), (0.26, "Needs attention"), (0.25, "Unhealthy"),
     (0.01, "Unhealthy"), (0.0, "Exhausted"), (-3.0, "Exhausted"),
     (None, "no data"), (math.nan, "no data"), (math.inf, "no data")],
)
def test_buckets_are_health_yamls(remaining: float | None, expected: str,
                                  shipped_policies: Policies) -> None:
    assert bucket(remaining, shipped_policies.health.review) == expected


def test_bucket_lines_are_policy_values(tmp_path: Path) -> None:
    d = copy_policies(tmp_path)
    edit(d, "health.yaml", "{name: Healthy, above: 0.75}", "{name: Healthy, above: 0.9}")
    assert bucket(0.8, load_policies(d).health.review) == "Observe"
    edit(d, "health.yaml", "{name: Healthy, above: 0.9}", "{name: Healthy, above: 0.4}")
    with pytest.raises(Exception, match="strictly descend"):
        load_policies(d)


def test_reports_are_written_and_a_rerun_overwrites_them(
    env: SimEnvironment, store: IncidentStore, settings: Settings, shipped_policies: Policies
) -> None:
    due = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday: it reviews week 48
    ctx = context(env, store, settings, shipped_policies, due_at=due)
    _, first = review(ctx)
    names = sorted(Path(p).name for p in first.reports)
    assert names == ["health-2026-W48-budget.png", "health-2026-W48-sli.png",
                     "health-2026-W48.json", "health-2026-W48.md"]
    for png in (p for p in first.reports if p.endswith(".png")):
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = Path(first.reports[0]).read_text()
    assert md.startswith("# Health-target review, 2026-W48")
    assert f"**{first.summary}.**" in md
    assert "| checkout-availability |" in md
    assert "![health-2026-W48-budget.png](health-2026-W48-budget.png)" in md
    assert "## Needs attention" in md and "## Error-budget policy" in md
    before = sorted(p.name for p in ctx.reports_dir.iterdir())
    _, second = review(ctx)
    assert sorted(p.name for p in ctx.reports_dir.iterdir()) == before
    assert second.reports == first.reports


def test_a_value_that_is_not_a_number_is_no_data_never_healthy(
    env: SimEnvironment, store: IncidentStore, settings: Settings, shipped_policies: Policies
) -> None:
    env.state.series["redis"]["error_ratio"][-30] = math.nan  # a broken scrape, half an hour ago
    observed, analysis = review(context(env, store, settings, shipped_policies))
    row = row_of(observed, "redis-availability")
    assert row["budget_remaining"] is None and row["sli_7d"] is None
    report = json.loads(Path(analysis.reports[1]).read_text())
    assert row_of(report, "redis-availability")["bucket"] == "no data"
    finding = next(f for f in analysis.findings if f.subject == "redis-availability")
    assert finding.kind == "slo_no_data"
    assert finding.level != "info"
    line = next(line for line in Path(analysis.reports[0]).read_text().splitlines()
                if line.startswith("| redis-availability |"))
    assert "no data" in line and "Healthy" not in line
    # The guardrails do not trust it either.
    assert observed["services"]["redis"]["state"] == "hold"
    assert observed["services"]["redis"]["rule"] == "health.yaml:error_budget_policy.no_data"


def test_budget_consumed_by_each_incident_in_the_week(
    env: SimEnvironment, store: IncidentStore, settings: Settings, shipped_policies: Policies
) -> None:
    now = env.now()
    start, end = now - timedelta(hours=20), now - timedelta(hours=8)
    store.save_incident(Incident(
        id="INC-0001", title="checkout errors after 2.14.0", environment="sim:x",
        group_key="g1", services=["checkout"], opened_at=start, severity=Severity.SEV1,
        status=IncidentStatus.MITIGATED,
        # Mitigated (verified) at `end`; the postmortem closed it two hours later.
        timeline=[TimelineEvent(at=end, kind=EventKind.VERIFIED, message="verified"),
                  TimelineEvent(at=end + timedelta(hours=2), kind=EventKind.CLOSED,
                                message="closed")]))
    store.save_incident(Incident(  # another service: not checkout's
        id="INC-0002", title="search slow", environment="sim:x", group_key="g2",
        services=["search"], opened_at=start, status=IncidentStatus.RESOLVED))
    store.save_incident(Incident(  # over before the week began
        id="INC-0003", title="old checkout blip", environment="sim:x", group_key="g3",
        services=["checkout"], opened_at=now - timedelta(days=12),
        status=IncidentStatus.RESOLVED,
        timeline=[TimelineEvent(at=now - timedelta(days=11), kind=EventKind.CLOSED,
                                message="closed")]))
    observed, analysis = review(context(env, store, settings, shipped_policies))
    [spent] = row_of(observed, "checkout-availability")["incidents"]
    assert spent["id"] == "INC-0001"
    # Computed here from the raw series: the minutes from start to end, inclusive.
    values = env.state.series["checkout"]["error_ratio"]
    first = len(values) - 1 - int((now - start).total_seconds() // 60)
    last = len(values) - 1 - int((now - end).total_seconds() // 60)
    window = values[first:last + 1]
    assert spent["minutes"] == len(window) == 12 * 60 + 1
    assert spent["bad_share"] == pytest.approx(sum(window) / len(window))
    assert spent["budget_consumed"] == pytest.approx(sum(window) / (0.001 * 28 * DAY))
    assert 0.25 < spent["bad_share"] < 0.35  # 2.14.0's ~30% failing orders
    assert row_of(observed, "search-availability")["incidents"][0]["id"] == "INC-0002"
    assert "INC-0001" in Path(analysis.reports[0]).read_text()


def test_deploys_and_flag_changes_of_the_week_are_listed(
    store: IncidentStore, settings: Settings, shipped_policies: Policies
) -> None:
    env = SimEnvironment.create("flag_rollout_errors", 7)
    env.wait(60)
    observed, analysis = review(context(env, store, settings, shipped_policies))
    checkout = observed["services"]["checkout"]
    assert [(c["key"], c["to_percent"]) for c in checkout["flag_changes"]] == [
        ("new-checkout-flow", 10), ("new-checkout-flow", 25)]
    assert "3.4.2" in [d["version"] for d in observed["services"]["inventory"]["deploys"]]
    md = Path(analysis.reports[0]).read_text()
    assert "flag new-checkout-flow 10% → 25%" in md


def test_change_against_last_week_reads_last_weeks_report(
    env: SimEnvironment, store: IncidentStore, settings: Settings, shipped_policies: Policies
) -> None:
    due = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    ctx = context(env, store, settings, shipped_policies, due_at=due)
    observed, _ = review(ctx)
    assert row_of(observed, "checkout-availability")["last_week"]["source"] == "telemetry"
    ctx.reports_dir.mkdir(parents=True, exist_ok=True)
    (ctx.reports_dir / "health-2026-W47.json").write_text(json.dumps({"rows": [
        {"slo": "checkout-availability", "sli_7d": 0.9995, "budget_remaining": 0.8}]}))
    observed, analysis = review(ctx)
    before = row_of(observed, "checkout-availability")["last_week"]
    assert before == {"source": "report", "sli_7d": 0.9995, "budget_remaining": 0.8}
    row = row_of(observed, "checkout-availability")
    line = next(line for line in Path(analysis.reports[0]).read_text().splitlines()
                if line.startswith("| checkout-availability |"))
    assert f"{(row['sli_7d'] - 0.9995) * 100:+.3f} pp" in line
    assert f"budget {(row['budget_remaining'] - 0.8) * 100:+.0f} pts" in line


def test_without_last_weeks_report_the_week_before_comes_from_telemetry(
    reviewed: Reviewed, shipped_policies: Policies
) -> None:
    env, observed = reviewed.env, reviewed.observed
    slo = slo_named(shipped_policies, "checkout-availability")
    fortnight, week = bad_ratio(slo, env, 2 * WEEK), bad_ratio(slo, env, WEEK)
    assert fortnight is not None and week is not None
    before = row_of(observed, "checkout-availability")["last_week"]
    assert before["sli_7d"] == pytest.approx(1 - (2 * fortnight - week))
    # A day of history: the week before is the simulator's long-run prior, labelled so.
    assert before["sli_7d"] == pytest.approx(1 - env.state.services["checkout"].prior_error_ratio)


def test_history_shorter_than_the_window_is_labelled(reviewed: Reviewed) -> None:
    env, observed, analysis = reviewed.env, reviewed.observed, reviewed.analysis
    recorded = row_of(observed, "checkout-availability")["recorded_minutes"]
    assert recorded == len(env.state.series["checkout"]["error_ratio"]) < WEEK
    md = Path(analysis.reports[0]).read_text()
    assert "backend's long-run average, not a measurement" in md
    assert "| checkout-availability | 99.90% |" in md and "%* |" in md


@pytest.mark.parametrize(("due", "week"), [
    (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), "2026-W48"),  # Monday: last week
    (datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "2026-W48"),
    (datetime(2027, 1, 4, 9, 0, tzinfo=UTC), "2026-W53"),  # across the year
])
def test_the_report_is_named_by_the_week_it_closes(due: datetime, week: str) -> None:
    assert iso_week(due) == week


def test_an_incident_from_the_loop_shows_its_cost(loop: OperateLoop, settings: Settings) -> None:
    run, env = watch.detect(loop, "bad_deploy", 7)
    incident = loop.start(run.incidents[0], env)  # SEV1: waits for a human, still burning
    env.wait(120)
    ctx = AgentContext(run_id="run-1", agent="health-review", due_at=env.now(), now=env.now(),
                       settings=settings, policies=loop.policies, telemetry=env,
                       store=loop.store)
    observed, analysis = review(ctx)
    [spent] = row_of(observed, "checkout-availability")["incidents"]
    assert spent["id"] == incident.id
    assert spent["end"] == env.now().isoformat()  # open: counted up to now
    values = env.state.series["checkout"]["error_ratio"][-spent["minutes"]:]
    assert spent["budget_consumed"] == pytest.approx(sum(values) / (0.001 * 28 * DAY))
    assert spent["budget_consumed"] > 0.5  # over half the 28-day budget in about two hours
    assert any(f.subject == "checkout" and f.kind == "error_budget_policy"
               for f in analysis.findings)


def test_twenty_eight_days_of_minutes_are_read_as_measurements(
    env: SimEnvironment, store: IncidentStore, settings: Settings, shipped_policies: Policies
) -> None:
    # Four weeks of one-minute history (40,320 points a series), as a long-running
    # production has: 27 quiet days before the bad one.
    for metrics in env.state.series.values():
        for name, values in metrics.items():
            metrics[name] = [values[0]] * (4 * WEEK - len(values)) + values
    quiet = env.state.series["checkout"]["error_ratio"][0]
    observed, analysis = review(context(env, store, settings, shipped_policies))
    row = row_of(observed, "checkout-availability")
    assert row["recorded_minutes"] == 4 * WEEK
    values = env.state.series["checkout"]["error_ratio"]
    assert row["sli_28d"] == pytest.approx(1 - sum(values) / len(values))
    assert row["sli_28d"] != pytest.approx(1 - quiet)  # the bad day is in it
    assert len(row["hourly"]["sli"]) == 7 * 24  # a full week of hours charted
    assert "long-run average" not in Path(analysis.reports[0]).read_text()
