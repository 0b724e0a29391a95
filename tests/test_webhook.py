"""Alertmanager webhook v4 parsing: what is taken in, what is refused, and where it says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from opsloop.alertmanager import PayloadError, PayloadLimits, parse_webhook
from opsloop.fingerprint import label_fingerprint
from opsloop.models import AnomalyStatus

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def alert(**overrides: Any) -> dict[str, Any]:
    base = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "env": "prod"},
        "annotations": {"summary": "checkout: error ratio 31% over 5m"},
        "startsAt": "2026-11-26T11:58:01.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "ignored",
    }
    return {**base, **overrides}


def payload(*alerts: Any, **overrides: Any) -> bytes:
    body = {
        "version": "4",
        "groupKey": '{}:{env="prod"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "opsloop",
        "groupLabels": {"env": "prod"},
        "commonLabels": {"env": "prod"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **overrides,
    }
    return json.dumps(body).encode()


def test_a_firing_alert_becomes_an_anomaly_fingerprinted_from_its_labels() -> None:
    batch = parse_webhook(payload(alert()), NOW)
    [anomaly] = batch.anomalies
    assert batch.rejected == []
    assert anomaly.status is AnomalyStatus.FIRING
    assert anomaly.fingerprint == label_fingerprint(anomaly.labels)
    assert anomaly.starts_at == datetime(2026, 11, 26, 11, 58, 1, 123456, tzinfo=UTC)
    assert anomaly.ends_at is None  # Go's zero time: still firing
    assert anomaly.source == "alertmanager"
    assert batch.message.group_labels == {"env": "prod"}


def test_resolution_comes_from_status_or_an_endsat_already_past() -> None:
    batch = parse_webhook(payload(
        alert(status="resolved", endsAt="2026-11-26T11:59:00Z"),
        alert(labels={"alertname": "A"}, endsAt="2026-11-26T11:00:00Z"),  # past: resolved
        alert(labels={"alertname": "B"}, endsAt="2026-11-26T13:00:00Z"),  # future: firing
    ), NOW)
    assert [a.status for a in batch.anomalies] == [
        AnomalyStatus.RESOLVED, AnomalyStatus.RESOLVED, AnomalyStatus.FIRING]
    assert batch.anomalies[0].ends_at == datetime(2026, 11, 26, 11, 59, tzinfo=UTC)


def test_one_bad_alert_is_named_by_index_and_field_and_the_good_ones_are_kept() -> None:
    batch = parse_webhook(payload(
        alert(),
        alert(labels={"alertname": 7}),
        alert(startsAt=1764158281),
        alert(labels={"alertname": "B", "bad-name": "x"}),
        alert(status="burning"),
        alert(labels={"alertname": "C"}),
    ), NOW)
    assert [a.name for a in batch.anomalies] == ["HighErrorRate", "C"]
    where = {e.loc for e in batch.rejected}
    assert where == {"alerts[1].labels.alertname", "alerts[2].startsAt",
                     "alerts[3].labels.bad-name", "alerts[4].status"}
    assert any("RFC 3339" in e.msg for e in batch.rejected if e.loc == "alerts[2].startsAt")


@pytest.mark.parametrize(("body", "status", "loc"), [
    (b"{not json", 400, "body"),
    (b"\xff\xfe", 400, "body"),
    (b"[1, 2]", 422, "body"),
    (payload(alert(), version="3"), 422, "version"),
    (json.dumps({"version": "4"}).encode(), 422, "alerts"),
    (json.dumps({"version": "4", "alerts": {"a": 1}}).encode(), 422, "alerts"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "body"),
])
def test_an_unusable_envelope_is_refused_naming_the_field(
    body: bytes, status: int, loc: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_webhook(body, NOW)
    assert caught.value.status == status
    assert caught.value.errors[0].loc == loc


def test_oversized_bodies_and_batches_are_413() -> None:
    limits = PayloadLimits(max_body_bytes=2000, max_alerts=3)
    with pytest.raises(PayloadError) as big:
        parse_webhook(payload(*[alert()] * 10), NOW, limits)
    assert big.value.status == 413
    with pytest.raises(PayloadError) as many:
        parse_webhook(payload(*[alert()] * 4), NOW, PayloadLimits(max_alerts=3))
    assert (many.value.status, many.value.errors[0].loc) == (413, "alerts")


def test_oversized_labels_refuse_only_that_alert() -> None:
    limits = PayloadLimits(max_labels=3, max_label_value_chars=10)
    batch = parse_webhook(payload(
        alert(labels={"a": "1", "b": "2", "c": "3", "d": "4"}),
        alert(labels={"alertname": "x" * 11}),
        alert(labels={"alertname": "ok"}),
    ), NOW, limits)
    assert [a.name for a in batch.anomalies] == ["ok"]
    assert [e.loc for e in batch.rejected] == ["alerts[0].labels", "alerts[1].labels.alertname"]


def test_a_naive_timestamp_is_refused_not_guessed() -> None:
    batch = parse_webhook(payload(alert(startsAt="2026-11-26T11:58:01")), NOW)
    assert batch.anomalies == []
    assert "UTC offset" in batch.rejected[0].msg


def test_a_bad_envelope_detail_is_reported_but_costs_no_alert() -> None:
    batch = parse_webhook(payload(alert(), truncatedAlerts="2", receiver="\udc00"), NOW)
    assert len(batch.anomalies) == 1
    assert {e.loc for e in batch.rejected} == {"truncatedAlerts", "receiver"}


def test_lone_surrogates_in_labels_are_refused_not_a_crash() -> None:
    body = payload(alert(labels={"alertname": "\ud800"}), alert(labels={"alertname": "ok"}))
    batch = parse_webhook(body, NOW)
    assert [a.name for a in batch.anomalies] == ["ok"]
    assert batch.rejected[0].loc == "alerts[0].labels.alertname"
