from datetime import UTC, datetime, timedelta
from itertools import count

from opsloop.fingerprint import label_fingerprint
from opsloop.intake import AlertGrouper
from opsloop.models import Anomaly, AnomalyStatus
from opsloop.policy.schema.intake import IntakePolicy

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def alert(name: str, service: str, status: str = "firing", **extra: str) -> Anomaly:
    labels = {"alertname": name, "service": service, "env": "prod", **extra}
    return Anomaly(
        fingerprint=label_fingerprint(labels),
        labels=labels,
        status=AnomalyStatus(status),
        starts_at=T0,
        annotations={"runbook": "x"},
    )


def grouper(**policy: object) -> AlertGrouper:
    ids = count(1)
    return AlertGrouper(
        IntakePolicy.model_validate({"version": 1, **policy}),
        "sim:test",
        lambda: f"INC-{next(ids):04d}",
    )


def test_an_alert_storm_becomes_one_incident() -> None:
    g = grouper(group_by=["env"], group_wait_minutes=1)
    storm = [alert("HighErrorRate", f"svc-{i % 7}", pod=f"pod-{i}") for i in range(3000)]
    g.ingest(storm, T0)
    assert g.due(T0) == []  # group_wait has not passed
    opened = g.due(T0 + timedelta(minutes=1))
    assert len(opened) == 1
    assert len(opened[0].anomalies) == 3000
    assert opened[0].services == [f"svc-{i}" for i in range(7)]
    g.ingest(storm, T0 + timedelta(minutes=2))  # re-sent: deduplicated, no new incident
    assert g.due(T0 + timedelta(minutes=5)) == []


def test_group_by_service_splits_incidents() -> None:
    g = grouper(group_by=["alertname", "service"], group_wait_minutes=0)
    g.ingest(
        [
            alert("HighErrorRate", "checkout"),
            alert("HighErrorRate", "payments"),
            alert("HighErrorRate", "checkout"),
        ],
        T0,
    )
    opened = g.due(T0)
    assert sorted(i.services[0] for i in opened) == ["checkout", "payments"]
    assert [len(i.anomalies) for i in opened] == [1, 1]


def test_silenced_alerts_open_nothing() -> None:
    g = grouper(
        group_wait_minutes=0,
        silences=[
            {
                "matchers": ['service="search"'],
                "startsAt": T0.isoformat(),
                "endsAt": (T0 + timedelta(hours=1)).isoformat(),
                "createdBy": "ana",
                "comment": "maintenance",
            }
        ],
    )
    g.ingest([alert("DiskFilling", "search")], T0)
    assert g.due(T0) == []
    assert len(g.silenced) == 1
    g.ingest([alert("DiskFilling", "search")], T0 + timedelta(hours=2))  # silence expired
    assert len(g.due(T0 + timedelta(hours=2))) == 1


def test_inhibited_alerts_are_dropped_while_the_source_fires() -> None:
    g = grouper(
        group_by=["alertname"],
        group_wait_minutes=0,
        inhibit_rules=[
            {
                "source_matchers": ['alertname="ServiceDown"'],
                "target_matchers": ['alertname="HighLatencyP99"'],
                "equal": ["service"],
            }
        ],
    )
    g.ingest(
        [
            alert("ServiceDown", "checkout"),
            alert("HighLatencyP99", "checkout"),
            alert("HighLatencyP99", "search"),
        ],
        T0,
    )
    opened = {i.title for i in g.due(T0)}
    assert opened == {"ServiceDown on checkout", "HighLatencyP99 on search"}
    assert [a.service for a in g.inhibited] == ["checkout"]


def test_a_resolution_alone_opens_nothing() -> None:
    g = grouper(group_wait_minutes=0)
    g.ingest([alert("HighErrorRate", "checkout", status="resolved")], T0)
    assert g.due(T0) == []
