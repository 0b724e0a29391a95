"""log_classes: log lines mined into templates (drain3) and sorted into template classes,
recent against the service's own baseline, on recorded incidents and the simulator."""

from __future__ import annotations

import copy
import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from opsloop.models import LogLine, ServiceInfo, ToolStatus
from opsloop.models.catalog import LOG_CLASSES
from opsloop.settings import REPO_ROOT
from opsloop.simulator import SCENARIOS, SimEnvironment, SimState
from opsloop.tools.log_templates import classify, mine, name_pattern, named
from opsloop.tools.recorded import RecordedProduction, load_recording
from opsloop.tools.recorded_series import parse_time
from opsloop.tools.toolbox import Toolbox

CASES = REPO_ROOT / "evals" / "cases"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def recorded(case: str) -> RecordedProduction:
    folder = next(p for p in CASES.glob(f"*/{case}") if p.is_dir())
    spec = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
    return RecordedProduction(load_recording(folder, parse_time(spec["recording"]["now"])))


@functools.cache
def _simulated(name: str, minutes_after_fault: int) -> SimState:
    env = SimEnvironment.create(name, 7)
    env.wait(max(SCENARIOS[name].fault_at_minute, 0) + minutes_after_fault)
    return env.state


def simulated(name: str, minutes_after_fault: int = 15) -> SimEnvironment:
    """A scenario advanced past its fault, built once per run and copied for each test."""
    return SimEnvironment(copy.deepcopy(_simulated(name, minutes_after_fault)))


def classes(production: Any, service: str, **args: Any) -> dict[str, Any]:
    result = Toolbox(production, clock=production).call("log_classes", service=service, **args)
    assert result.status is ToolStatus.OK, result.error
    return result.data


@pytest.mark.parametrize(("line", "expected"), [
    ("tls: failed to verify certificate: x509: certificate signed by unknown authority", "tls"),
    ("SSL routines:tls_process_server_certificate:certificate verify failed", "tls"),
    ("dial tcp: lookup db.internal on 10.0.0.2:53: no such host", "dns"),
    ("getaddrinfo ENOTFOUND: NXDOMAIN for api.vendor.example", "dns"),
    ("upstream orders timed out after 3000ms", "timeout"),
    ("rpc error: code = DeadlineExceeded desc = context deadline exceeded", "timeout"),
    ("connect ECONNREFUSED 10.1.2.3:5432", "connection_refused"),
    ("read: connection reset by peer", "connection_refused"),
    ("upstream returned 503 Service Unavailable", "unavailable"),
    ("502 Bad Gateway", "unavailable"),
    ("Container killed: OOMKilled (exit code 137)", "oom"),
    ("java.lang.OutOfMemoryError: GC overhead limit exceeded", "oom"),
    ("write /data/segment: no space left on device", "disk_full"),
    ("HTTP 429 Too Many Requests: rate limit exceeded for tenant", "rate_limited"),
    ("request throttled: quota exceeded for project", "rate_limited"),
    ("401 Unauthorized: invalid bearer token", "auth"),
    ("permission denied for relation orders", "auth"),
    ("HikariPool-1 - connection pool exhausted, request timed out after 30000ms",
     "pool_exhausted"),
    ("FATAL: sorry, too many connections for role app", "pool_exhausted"),
    ("retrying request (attempt 3 of 5) with exponential backoff", "retry"),
    ("cache miss for key user:42, loading from store", "cache_miss"),
    ("CPU throttled: 87% of periods over quota", "cpu"),
    ("configuration reload failed: invalid setting max_conns=-1", "config"),
    ("GET /index.html 200 12ms", "other"),
])
def test_lines_of_any_stack_sort_into_the_classes_they_mean(line: str, expected: str) -> None:
    assert classify(line) == expected


def test_the_most_specific_class_wins_when_a_line_says_several_things() -> None:
    # An auth failure caused by a certificate is a certificate problem; a DNS lookup that
    # timed out is a DNS problem; an error about a token lookup is not a DNS lookup.
    assert classify("token introspection failed: x509: certificate has expired") == "tls"
    assert classify("dial tcp: lookup api.example.com on 10.0.0.2:53: i/o timeout") == "dns"
    assert classify("token lookup failed: upstream store: RESOURCE_EXHAUSTED") == "rate_limited"
    assert classify("config reload: rate-limit profile 'spring' loaded") == "config"


def test_variable_lines_share_one_template_and_status_codes_keep_their_meaning() -> None:
    lines = tuple(f"upstream orders returned {code} after {ms}ms for request {rid}"
                  for code, ms, rid in [(502, 311, 9001), (503, 42, 9002), (503, 977, 9003)])
    mined = mine(lines)
    assert len(set(mined)) == 1
    template, cls = mined[0]
    assert "<HTTP_5XX>" in template and cls == "unavailable" == classify(template)
    assert mine(lines) == mined  # the same lines, the same templates


def test_lines_alike_but_for_their_cause_are_not_merged_into_one_template() -> None:
    # Same length, mostly the same words: drain3 alone would make one "<*>" template of
    # them and lose both the certificate and the refusal.
    lines = ("request to orders failed: certificate expired",
             "request to orders failed: connection refused",
             "request to orders failed: certificate expired")
    mined = mine(lines)
    assert [cls for _, cls in mined] == ["tls", "connection_refused", "tls"]
    assert mined[0][0] == lines[0] and mined[1][0] == lines[1]


def test_equal_lines_always_share_a_template() -> None:
    # Mined line by line, drain3 puts the last of these into a cluster other than the
    # first's: by then the first line's cluster has generalised past the similarity
    # threshold, so the same text would be reported under two templates.
    lines = ("alpha beta gamma delta", "alpha beta gamma alpha", "alpha beta gamma delta",
             "alpha gamma gamma delta", "beta beta gamma delta", "alpha gamma beta beta",
             "alpha beta gamma delta")
    mined = mine(lines)
    assert mined[0] == mined[2] == mined[6]
    assert mined[0][0] == "alpha <*> gamma <*>"


def test_names_are_found_as_hosts_not_inside_other_names_or_url_paths() -> None:
    rx, forms = name_pattern(["payments", "search", "authz"])
    assert named(rx, forms, "Post https://authz.identity.internal:8443/v1/x failed") == {"authz"}
    assert named(rx, forms, "connection refused: payments-0:5432") == {"payments"}
    assert named(rx, forms, "connection refused: payments-provider.primary.example.net") == set()
    assert named(rx, forms, "route /api/v1/search -> 200") == set()


def test_callers_certificate_errors_classify_as_tls_and_name_the_callee() -> None:
    data = classes(recorded("msteams-2020-expired-auth-cert"), "chat-api")
    assert data["top"] == "tls"
    assert data["classes"]["tls"]["new"] and data["classes"]["tls"]["surging"]
    assert data["names"] == ["authz"]
    assert data["classes"]["dns"] == {"recent": 0, "baseline": 0, "rate_ratio": 0.0,
                                      "surging": False, "new": False}
    assert set(data["classes"]) == set(LOG_CLASSES)


def test_resolver_failures_classify_as_dns_whatever_the_wording() -> None:
    production = recorded("dyn-2016-managed-dns-outage")
    assert classes(production, "checkout-api")["top"] == "dns"
    assert classes(production, "notifier")["top"] == "dns"  # "server misbehaving"


def test_a_class_present_in_the_baseline_at_the_same_rate_is_not_surging() -> None:
    class Steady:
        """Two timeout lines every minute for three hours, and now a burst of x509 errors."""

        def services(self) -> list[ServiceInfo]:
            return [ServiceInfo(name="api", tier=1, replicas=2, version="1")]

        def logs(self, service: str, minutes: int, pattern: str | None = None,
                 limit: int = 200) -> list[LogLine]:
            lines = [LogLine(at=NOW - timedelta(minutes=m, seconds=s), service="api",
                             level="ERROR", message=f"upstream db timeout after {900 + m}ms")
                     for m in range(180) for s in (0, 30)]
            lines += [LogLine(at=NOW - timedelta(minutes=m), service="api", level="ERROR",
                              message=f"x509: certificate has expired (conn {m})")
                      for m in range(5)]
            return [ln for ln in lines if ln.at > NOW - timedelta(minutes=minutes)][-limit:]

    data = Toolbox(Steady()).call("log_classes", service="api").data  # no clock: wall time
    assert data["classes"]["timeout"]["recent"] == 30
    assert data["classes"]["timeout"]["rate_ratio"] == pytest.approx(1.0)
    assert not data["classes"]["timeout"]["surging"] and not data["classes"]["timeout"]["new"]
    assert data["classes"]["tls"]["surging"] and data["classes"]["tls"]["new"]
    assert data["top"] == "timeout"  # the most recent lines; `surging` says what is new


def test_simulated_outage_surges_where_it_happens_and_not_before() -> None:
    during = classes(simulated("dependency_outage"), "payments")
    assert during["top"] in ("connection_refused", "timeout")
    assert during["classes"]["connection_refused"]["surging"]
    before = classes(SimEnvironment.create("dependency_outage", 7), "payments")
    assert not any(v["surging"] for c, v in before["classes"].items() if c != "other")
    assert before["top"] is None


def test_the_same_logs_give_the_same_answer() -> None:
    first = classes(recorded("letsencrypt-2021-expired-root-chain"), "webhook-dispatcher")
    again = classes(recorded("letsencrypt-2021-expired-root-chain"), "webhook-dispatcher")
    assert first == again and first["top"] == "tls"
    assert len(first["templates"]) <= 10 and first["templates"][0]["class"] == "tls"


def test_an_unknown_service_is_an_error_not_an_empty_answer() -> None:
    result = Toolbox(recorded("msteams-2020-expired-auth-cert")).call(
        "log_classes", service="nope")
    assert result.status is ToolStatus.ERROR

