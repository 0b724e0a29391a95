"""Intake beyond the first notification: group_interval flushes, resolution, inhibition across
batches, storms, and a grouper shared by request threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from itertools import count

from opsloop.fingerprint import label_fingerprint
from opsloop.intake import AlertGrouper, representatives
from opsloop.models import Anomaly, AnomalyStatus
from opsloop.policy.schema.intake import IntakePolicy

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def alert(name: str, service: str, status: str = "firing", **extra: str) -> Anomaly:
    labels = {"alertname": name, "service": service, "env": "prod", **extra}
    return Anomaly(fingerprint=label_fingerprint(labels), labels=labels,
                   status=AnomalyStatus(status), starts_at=T0)


def grouper(max_anomalies: int | None = None, **policy: object) -> AlertGrouper:
    ids = count(1)
    return AlertGrouper(IntakePolicy.model_validate({"version": 1, **policy}), "sim:test",
                        lambda: f"INC-{next(ids):04d}", max_anomalies=max_anomalies)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_new_alerts_in_an_open_group_are_flushed_after_group_interval() -> None:
    g = grouper(group_wait_minutes=1, group_interval_minutes=5)
    g.ingest([alert("HighErrorRate", "checkout")], at(0))
    [incident] = g.due(at(1))
    g.ingest([alert("HighErrorRate", "web")], at(2))
    assert g.updates(at(3)) == []  # group_interval has not passed since the incident opened
    [update] = g.updates(at(6))
    assert update.incident_id == incident.id
    assert [a.service for a in update.new_firing] == ["web"]
    assert (update.firing_count, update.closed, update.repeat) == (2, False, False)
    assert g.updates(at(12)) == []  # nothing changed since


def test_an_unchanged_group_is_renotified_after_repeat_interval() -> None:
    g = grouper(group_wait_minutes=0, group_interval_minutes=5, repeat_interval_minutes=60)
    g.ingest([alert("DiskFilling", "search")], at(0))
    g.due(at(0))
    assert g.updates(at(59)) == []
    [update] = g.updates(at(60))
    assert update.repeat and update.new_firing == []


def test_a_group_whose_alerts_all_resolve_closes_and_a_new_firing_opens_a_new_incident() -> None:
    g = grouper(group_wait_minutes=0, group_interval_minutes=5)
    g.ingest([alert("HighErrorRate", "checkout"), alert("HighErrorRate", "web")], at(0))
    [first] = g.due(at(0))
    g.ingest([alert("HighErrorRate", "checkout", "resolved")], at(1))
    [partial] = g.updates(at(5))
    assert [a.service for a in partial.resolved] == ["checkout"] and not partial.closed
    g.ingest([alert("HighErrorRate", "web", "resolved")], at(6))
    [final] = g.updates(at(10))
    assert final.closed and final.firing_count == 0
    assert g.groups == {}
    g.ingest([alert("HighErrorRate", "checkout")], at(20))
    [second] = g.due(at(20))
    assert second.id != first.id


def test_a_source_alert_from_an_earlier_batch_still_inhibits() -> None:
    g = grouper(group_by=["service"], group_wait_minutes=0, inhibit_rules=[{
        "source_matchers": ['severity="page"'], "target_matchers": ['severity="ticket"'],
        "equal": ["service"]}])
    g.ingest([alert("HighErrorRate", "checkout", severity="page")], at(0))
    g.ingest([alert("HighLatencyP99", "checkout", severity="ticket"),
              alert("HighLatencyP99", "search", severity="ticket")], at(1))
    assert [a.service for a in g.inhibited] == ["checkout"]
    g.ingest([alert("HighErrorRate", "checkout", "resolved", severity="page")], at(2))
    g.ingest([alert("HighLatencyP99", "checkout", severity="ticket")], at(3))
    assert g.stats.inhibited == 1  # the source resolved: the target is let through now


def test_two_alerts_matching_both_sides_of_a_rule_do_not_mute_each_other() -> None:
    g = grouper(group_by=["alertname"], group_wait_minutes=0, inhibit_rules=[{
        "source_matchers": ['team="db"'], "target_matchers": ['team="db"'],
        "equal": ["env"]}])
    g.ingest([alert("A", "postgres", team="db"), alert("B", "redis", team="db")], at(0))
    assert g.stats.inhibited == 0


def test_a_storm_of_thirty_thousand_alerts_is_one_incident_with_a_bounded_record() -> None:
    g = grouper(max_anomalies=50, group_wait_minutes=1)
    storm = [alert("PodCrashLooping", f"svc-{i % 9}", pod=f"pod-{i}") for i in range(30_000)]
    for start in range(0, len(storm), 5000):
        g.ingest(storm[start:start + 5000], at(0))
    g.ingest(storm[:5000], at(0.5))  # Alertmanager re-sends: deduplicated
    [incident] = g.due(at(1))
    assert len(incident.anomalies) == 50
    assert incident.services == [f"svc-{i}" for i in range(9)]
    assert {a.service for a in incident.anomalies} == set(incident.services)  # every kind kept
    assert g.stats.received == 35_000 and g.stats.deduplicated == 5000
    assert g.snapshot()["alerts_held"] == 30_000


def test_representatives_keep_one_of_each_kind_before_filling_with_the_earliest() -> None:
    alerts = [alert("A", "x", pod=str(i)) for i in range(5)] + [alert("B", "y")]
    picked = representatives(alerts, 2)
    assert {a.name for a in picked} == {"A", "B"}
    assert representatives(alerts, None) == sorted(alerts, key=lambda a: (a.starts_at,
                                                                         a.fingerprint))


def test_concurrent_ingest_from_many_threads_loses_nothing() -> None:
    g = grouper(group_by=["service"], group_wait_minutes=0)

    def post(worker: int) -> None:
        for i in range(500):
            g.ingest([alert("HighErrorRate", f"svc-{worker}", pod=str(i))], at(0))

    threads = [threading.Thread(target=post, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert g.stats.received == 4000 and g.stats.deduplicated == 0
    opened = g.due(at(0))
    assert sorted(len(i.anomalies) for i in opened) == [500] * 8
