"""The shipped cases and suites, and the variant machinery the hard cases rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.agents.specialists import SPECIALISTS
from opsloop.evals.cases import load_case, load_cases, load_suites, select
from opsloop.evals.compare import load_thresholds
from opsloop.evals.driver import Harness, deliveries
from opsloop.evals.metrics import score_case
from opsloop.evals.overlay import overlay_policies
from opsloop.evals.runner import run_case
from opsloop.models import AnomalyStatus, IncidentStatus
from opsloop.policy import load_policies
from opsloop.settings import REPO_ROOT, Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.variants import HiddenMetric, MaskedMetrics, Variant
from opsloop.tools.runbook_index import RunbookIndex

EVALS = REPO_ROOT / "evals"
HARD = {"two-incidents", "red-herring", "flapping", "missing-metrics", "verification",
        "injection", "change-freeze"}


def test_the_shipped_suite_is_broad_enough() -> None:
    cases = load_cases(EVALS / "cases")
    assert len(cases) >= 40
    assert sum(c.kind == "recorded" for c in cases) >= 10
    handled = {s for c in cases for e in c.expected for s in e.specialists}
    assert handled == set(SPECIALISTS)
    assert {t for c in cases for t in c.tags} >= HARD
    suites = load_suites(EVALS / "suites")
    assert {"offline", "smoke", "hard", "recorded", "simulated"} <= set(suites)
    assert all(select(cases, s, None) for s in suites.values())
    load_thresholds(EVALS / "thresholds.yaml")  # parses, and names only known metrics


def test_every_recorded_case_parses_through_the_webhook_intake() -> None:
    for case in load_cases(EVALS / "cases"):
        if case.kind == "recorded":
            assert deliveries(case), case.id


def test_flapping_payloads_leave_one_alert_firing_again() -> None:
    case = load_case(EVALS / "cases" / "recorded" / "flapping-payments-provider",
                     EVALS / "cases")
    statuses = [a.status for _, alerts in deliveries(case) for a in alerts]
    assert statuses == [AnomalyStatus.FIRING, AnomalyStatus.RESOLVED, AnomalyStatus.FIRING]


def test_a_hidden_metric_is_missing_from_telemetry_only() -> None:
    variant = Variant(base="bad_deploy",
                      hidden_metrics=[HiddenMetric(service="checkout", metric="error_ratio")])
    env = SimEnvironment(variant.build("t"))
    masked = MaskedMetrics(env.metrics, variant.hidden_metrics)
    assert masked.metric("checkout", "error_ratio", 30).points == []
    assert masked.average("checkout", "error_ratio", 60) is None
    assert len(env.metric("checkout", "error_ratio", 30).points) == 30
    assert len(masked.metric("checkout", "latency_p99_ms", 30).points) == 30


def test_variants_refuse_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown base scenario 'nope'"):
        Variant(base="nope")
    with pytest.raises(ValueError, match="unknown event kind 'meteor'"):
        Variant.model_validate({"events": [{"at": 1, "kind": "meteor", "service": "web"}]})
    with pytest.raises(ValueError, match="unknown service 'mainframe'"):
        Variant(services={"mainframe": {"tier": 1}}).build("t")


def test_two_incidents_at_once_each_get_their_own_fix(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path)
    case = load_case(EVALS / "cases" / "simulated" / "hard-two-incidents", EVALS / "cases")
    policies = overlay_policies(settings.policies_dir, case.policies, tmp_path / "policies")
    assert policies.intake.group_by == ["env", "team"]
    harness = Harness(settings, load_policies(settings.policies_dir),
                      RunbookIndex(tmp_path / "index", settings.runbook_dirs))
    run = run_case(case, harness, policies, tmp_path / "case", "offline", 1)
    assert run.error is None
    assert [i.status for i in run.incidents] == [IncidentStatus.MITIGATED] * 2
    assert {a.type for a in (e.action for e in run.executed) if a} == {"restart",
                                                                       "rollback_deploy"}
    assert score_case(case, run).passed
