"""opsloop's own Prometheus metrics, read from its records at scrape time.

Nothing is counted twice or kept in a second place: incidents, actions and approvals come
from the store, agent runs from the schedule ledger, intake counters from the grouper,
notification deliveries from their spool. A restarted process therefore reports the same
totals, as a counter should.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from opsloop.tools.notifications import Spool

if TYPE_CHECKING:
    from opsloop.api.runtime import IntakeRuntime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeCollector(Collector):
    def __init__(self, runtime: IntakeRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        stats = vars(rt.grouper.stats)
        alerts = CounterMetricFamily("opsloop_intake_alerts", "alerts taken in by outcome "
                                     "(this process)", labels=["outcome"])
        for name in ("received", "deduplicated", "silenced", "inhibited", "resolved",
                     "unknown_resolutions"):
            alerts.add_metric([name], stats[name])
        yield alerts
        yield CounterMetricFamily("opsloop_intake_groups_closed", "alert groups closed "
                                  "(this process)", value=stats["groups_closed"])
        incidents, actions, waiting = rt.read(lambda s: (s.count_by_status(),
                                                         s.action_outcomes(),
                                                         len(s.pending())))
        opened = CounterMetricFamily("opsloop_incidents_opened", "incidents (and agents' "
                                     "change records) ever opened", value=sum(incidents.values()))
        yield opened
        by_status = GaugeMetricFamily("opsloop_incidents", "incidents by current status",
                                      labels=["status"])
        for status, n in sorted(incidents.items()):
            by_status.add_metric([status], n)
        yield by_status
        acted = CounterMetricFamily("opsloop_actions", "proposed actions by outcome: the "
                                    "result when one ran, else the policy decision",
                                    labels=["outcome"])
        for outcome, n in sorted(actions.items()):
            acted.add_metric([outcome], n)
        yield acted
        yield GaugeMetricFamily("opsloop_approvals_waiting", "approval requests waiting for "
                                "a human", value=waiting)
        runs = CounterMetricFamily("opsloop_agent_runs", "scheduled agent runs by status",
                                   labels=["agent", "status"])
        for (agent, status), n in sorted(rt.ledger.counts().items()):
            runs.add_metric([agent, status], n)
        yield runs
        seconds = CounterMetricFamily("opsloop_agent_run_seconds", "wall time of finished "
                                      "scheduled runs", labels=["agent"])
        for agent, total in sorted(rt.ledger.seconds().items()):
            seconds.add_metric([agent], total)
        yield seconds
        yield notification_deliveries(rt.settings.notification_spool)
        yield GaugeMetricFamily("opsloop_errors_recent", "errors the runtime logged (last 50)",
                                value=len(rt.errors))


def notification_deliveries(spool_path: Path) -> Metric:
    """Deliveries to notification backends by state: `failed` is what someone must look at
    (`opsloop notifications list --state failed`)."""
    family = GaugeMetricFamily("opsloop_notification_deliveries", "deliveries to "
                               "notification backends by backend and state (pending, sending, "
                               "sent, failed)", labels=["backend", "state"])
    if spool_path.exists():  # none until a backend is enabled in notifications.yaml
        for (backend, state), n in sorted(Spool(spool_path).counts().items()):
            family.add_metric([backend, state], n)
    return family


def exposition(runtime: IntakeRuntime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    return generate_latest(registry)
