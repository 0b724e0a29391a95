"""The evidence mechanisms behind issue 11, each checked by changing the evidence: the answer
must follow the evidence, not the catalogue's favourite. Recorded incidents (the
generalisation suite's) and simulator scenarios, through the offline reasoner only."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from opsloop.agents.reasoner import diagnose
from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.nodes.supervisor import novel_report
from opsloop.models import Anomaly, Diagnosis, Incident, LogLine
from opsloop.runbooks.format import HypothesisSpec
from opsloop.tools.recorded import RecordedProduction
from opsloop.tools.recorded_series import parse_time
from opsloop.tools.recording import Recording, load_recording
from opsloop.tools.runbook_index import RunbookIndex
from opsloop.tools.toolbox import Toolbox

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "evals" / "cases" / "generalisation"
TOOL_BUDGET = 60  # Settings.tool_calls_per_specialist

Mutation = Callable[[Recording], None]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RunbookIndex:
    return RunbookIndex(tmp_path_factory.mktemp("index"), [REPO / "runbooks"])


def _incident(folder: Path) -> Incident:
    """The incident the case's alerts open: every alert, every service they name."""
    anomalies = []
    for path in sorted((folder / "alerts").glob("*.json")):
        for alert in json.loads(path.read_text())["alerts"]:
            anomalies.append(Anomaly(fingerprint=path.stem, labels=alert["labels"],
                                     annotations=alert["annotations"],
                                     starts_at=parse_time(alert["startsAt"])))
    services = list(dict.fromkeys(a.service for a in anomalies if a.service))
    return Incident(id="INC-11", title=f"{anomalies[0].name} on {', '.join(services)}",
                    environment="recorded", group_key="recorded", anomalies=anomalies,
                    services=services, opened_at=anomalies[-1].starts_at)


def run_case(name: str, specialist: str, index: RunbookIndex,
             mutate: Mutation | None = None) -> Diagnosis:
    folder = CASES / name
    case = yaml.safe_load((folder / "case.yaml").read_text())
    recording = load_recording(folder, parse_time(case["recording"]["now"]))
    if mutate is not None:
        mutate(recording)
    production = RecordedProduction(recording)
    toolbox = Toolbox(production, allowed=set(SPECIALISTS[specialist].tools),
                      max_calls=TOOL_BUDGET, clock=production.clock)
    return diagnose(specialist, _incident(folder), toolbox, index)


def _top(d: Diagnosis) -> tuple[str, str] | None:
    return None if d.top is None or d.top.confidence < 0.6 else (d.top.category, d.top.service)


def _actions(d: Diagnosis) -> set[str]:
    return {p.action.describe() for p in d.proposals}


def _add_lines(service: str, level: str, message: str, minutes: int = 14) -> Mutation:
    """One line a minute on `service` for the last `minutes` before the recording's now."""
    def mutate(recording: Recording) -> None:
        recording.logs += [LogLine(at=recording.now - timedelta(minutes=m, seconds=7),
                                   service=service, level=level, message=message)
                           for m in range(1, minutes + 1)]
    return mutate


def _drop_lines(service: str, word: str) -> Mutation:
    def mutate(recording: Recording) -> None:
        recording.logs = [ln for ln in recording.logs
                          if not (ln.service == service and word in ln.message.lower())]
    return mutate


def _flatten(service: str, metric: str) -> Mutation:
    def mutate(recording: Recording) -> None:
        series = recording.metrics[service][metric]
        values = series.values or []
        series.values = [values[-1]] * len(values)  # as full as now, but it never climbed
    return mutate


# --- no favourite answer: failover needs a healthy, independent target ----------------------

def test_failover_goes_to_a_target_seen_healthy(index: RunbookIndex) -> None:
    d = run_case("aws-s3-2017-region-failover", "incident", index)
    assert _top(d) == ("dependency_outage", "object-store"), d.summary
    assert "failover(object-store, to_region=secondary)" in _actions(d)


def test_no_failover_when_the_target_region_fails_too(index: RunbookIndex) -> None:
    seen_failing = _add_lines("media-api", "ERROR", "GET s3://media-prod-secondary/img/1.jpg "
                              "failed: 503 ServiceUnavailable (upstream object-store)")
    d = run_case("aws-s3-2017-region-failover", "incident", index, seen_failing)
    assert not any(a.startswith("failover") for a in _actions(d)), d.summary


def test_no_failover_for_a_leaf_that_fails_on_its_own(index: RunbookIndex) -> None:
    """A resolver that panics everywhere: no target is known healthy, so nothing is failed
    over, and without another supported cause the incident is novel."""
    d = run_case("cloudflare-2017-leap-second-dns", "incident", index)
    assert _top(d) is None and d.proposals == [], d.summary
    report = novel_report([d], 0.6)
    assert "dependency_outage@cname-resolver" in report and "ruled out" in report


# --- amplification is not demand -------------------------------------------------------------

def test_a_retry_storm_is_not_scaled_out(index: RunbookIndex) -> None:
    d = run_case("dynamodb-2015-retry-amplification", "capacity", index)
    assert not any(a.startswith("scale_out") for a in _actions(d)), d.summary
    surge = next(h for h in d.hypotheses if h.category == "traffic_surge"
                 and h.service == "membership-svc")
    assert surge.confidence == 0.0
    assert any(e.check == "amplified_by_retries" and e.holds for e in surge.evidence)


def test_without_the_retries_the_same_load_reads_as_a_surge(index: RunbookIndex) -> None:
    d = run_case("dynamodb-2015-retry-amplification", "capacity", index,
                 _drop_lines("storage-node", "retrying"))
    assert _top(d) == ("traffic_surge", "membership-svc"), d.summary


def test_a_cache_collapse_floods_the_store_and_is_not_scaled(index: RunbookIndex) -> None:
    d = run_case("facebook-2010-cache-db-overload", "performance", index)
    assert _top(d) == ("cache_hit_collapse", "profile-api"), d.summary
    assert d.proposals == []


def test_a_flag_on_the_caller_explains_the_callees_load(index: RunbookIndex) -> None:
    d = run_case("knight-2012-repurposed-flag", "capacity", index)
    surge = next(h for h in d.hypotheses if h.service == "exchange-gateway")
    assert surge.confidence < 0.6
    assert any(e.check == "caller_changed_first" and e.holds for e in surge.evidence)


# --- silent services: the dependency graph --------------------------------------------------

def test_the_callee_whose_certificate_expired_is_blamed_not_its_callers(
        index: RunbookIndex) -> None:
    d = run_case("msteams-2020-expired-auth-cert", "incident", index)
    assert _top(d) == ("certificate_expiry", "authz"), d.summary
    assert d.proposals == []


def test_without_the_callers_tls_errors_authz_is_not_blamed(index: RunbookIndex) -> None:
    def no_tls(recording: Recording) -> None:
        for service in ("chat-api", "presence"):
            _drop_lines(service, "x509")(recording)
    d = run_case("msteams-2020-expired-auth-cert", "incident", index, no_tls)
    assert _top(d) != ("certificate_expiry", "authz"), d.summary


def test_failing_lookups_blame_the_shared_dns_provider(index: RunbookIndex) -> None:
    d = run_case("dyn-2016-managed-dns-outage", "incident", index)
    assert _top(d) == ("dependency_outage", "managed-dns"), d.summary
    assert d.proposals == []


def test_waiting_on_the_network_is_not_a_pool_leak(index: RunbookIndex) -> None:
    d = run_case("slack-2021-transit-degradation-pools", "incident", index)
    assert _top(d) == ("dependency_outage", "transit-network"), d.summary
    assert not any(a.startswith("restart") for a in _actions(d))


def test_suspects_path_is_the_default_only_when_asked() -> None:
    spec = HypothesisSpec.model_validate({
        "id": "h", "category": "c", "cause": "x",
        "checks": [{"id": "a", "tool": "service_info", "args": {"service": "{service}"}}]})
    assert spec.suspects == "alerting"


# --- baselines, not constants ----------------------------------------------------------------

def test_a_slow_leak_is_caught_by_its_slope(index: RunbookIndex) -> None:
    d = run_case("aws-ebs-2012-slow-agent-leak", "remediation", index)
    assert _top(d) == ("memory_leak", "volume-server"), d.summary
    assert "restart(volume-server)" in _actions(d)


def test_flat_memory_near_the_limit_is_not_a_leak(index: RunbookIndex) -> None:
    d = run_case("aws-ebs-2012-slow-agent-leak", "remediation", index,
                 _flatten("volume-server", "memory_utilization"))
    assert "restart(volume-server)" not in _actions(d), d.summary


def test_memory_that_grows_while_throughput_falls_is_a_backlog(index: RunbookIndex) -> None:
    d = run_case("slack-2016-job-queue-backlog", "remediation", index)
    assert "restart(job-queue)" not in _actions(d), d.summary


def test_a_release_that_calls_itself_is_rolled_back_not_scaled(index: RunbookIndex) -> None:
    d = run_case("milkieway-2020-recursive-crawler-cost", "cost", index)
    assert _top(d) == ("cost_runaway", "crawler"), d.summary
    assert _actions(d) == {"rollback_deploy(crawler, to_version=0.8.4)"}


# --- change correlation ----------------------------------------------------------------------

def test_a_config_push_is_rolled_back_like_a_release(index: RunbookIndex) -> None:
    d = run_case("gce-2016-network-config-push", "incident", index)
    assert _top(d) == ("bad_deploy", "edge-network"), d.summary
    assert "rollback_deploy(edge-network, to_version=netcfg-2025.04.11-r1)" in _actions(d)


def test_a_release_whose_dependency_failed_first_is_not_rolled_back(
        index: RunbookIndex) -> None:
    d = run_case("google-2020-quota-zero-auth", "incident", index)
    assert not any(a.startswith("rollback_deploy") for a in _actions(d)), d.summary
    release = next(h for h in d.hypotheses if h.category == "bad_deploy"
                   and h.service == "login-ui")
    assert any(e.check == "dependency_failed_first" and e.holds for e in release.evidence)
