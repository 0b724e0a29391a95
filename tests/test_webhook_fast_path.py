"""A storm's notification is read the fast way (one list, no Python per field); anything that
way cannot take sends it the careful way. Both must take in exactly the same alerts: these
tests hold the fast way to the careful one on generated payloads, valid and not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from hypothesis import given, settings
from hypothesis import strategies as st

from opsloop.alertmanager import (
    _ANOMALY_LIST,
    FieldError,
    PayloadLimits,
    _fields_alert_by_alert,
    _fields_at_once,
    parse_webhook,
)
from opsloop.models import Anomaly

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LIMITS = PayloadLimits(max_labels=6, max_annotations=3, max_name_chars=12,
                       max_label_value_chars=16, max_annotation_value_chars=24)
CHECKS = settings(max_examples=400, deadline=None, derandomize=True, database=None)

names = st.sampled_from(["alertname", "service", "env", "pod", "a_b", "x" * 13,
                         "bad-name", "9lives", "ÿ", "é"])
values = st.sampled_from(["", "checkout", "prod", "ÿ", "bÿcÿ", "é€", "v" * 17, "\ud800",
                          "\\", '"'])
timestamps = st.sampled_from([
    "2026-11-26T11:58:01.123456789Z", "2026-11-26T11:58:01Z", "2026-11-26T13:58:01+02:00",
    "0001-01-01T00:00:00Z", "2026-11-26T11:58:01", "yesterday", "2026-11-26T12:30:00Z",
    "2026-11-26T11:00:00-05:30",
])
scalars = st.one_of(st.none(), st.integers(-2, 2), st.booleans(), timestamps)


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "firing", "resolved", "burning"])),
        "labels": draw(st.dictionaries(names, values, max_size=7)),
        "startsAt": draw(st.one_of(timestamps, timestamps, scalars)),
    }
    if draw(st.booleans()):
        alert["annotations"] = draw(st.dictionaries(names, values, max_size=4))
    if draw(st.booleans()):
        alert["endsAt"] = draw(scalars)
    if draw(st.booleans()):
        alert["generatorURL"] = draw(st.one_of(values, scalars))
    if draw(st.booleans()):
        alert["fingerprint"] = draw(st.one_of(values, scalars))
    # Field names instead of aliases are accepted too; extra keys are ignored.
    for key in draw(st.sets(st.sampled_from(["starts_at", "ends_at", "generator_url",
                                             "extra"]), max_size=2)):
        alert[key] = draw(scalars)
    return alert


def careful(raw: bytes, limits: PayloadLimits) -> tuple[list[Anomaly], list[FieldError]]:
    """The alert-by-alert reading of a body's alerts, the reference."""
    rejected: list[FieldError] = []
    fields = _fields_alert_by_alert(json.loads(raw)["alerts"], NOW, limits, rejected)
    return _ANOMALY_LIST.validate_python(fields), rejected


def fast(raw: bytes, limits: PayloadLimits) -> list[Anomaly] | None:
    """The fast reading, or None where it hands the body to the careful one."""
    try:
        data = pydantic_core.from_json(raw)
    except ValueError:
        return None
    fields = _fields_at_once(data["alerts"], NOW, limits)
    return None if fields is None else _ANOMALY_LIST.validate_python(fields)


def body(items: list[Any]) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": "opsloop",
                       "alerts": items}).encode()


@CHECKS
@given(st.lists(alerts(), max_size=40))
def test_the_fast_way_takes_in_what_the_careful_way_does(items: list[dict[str, Any]]) -> None:
    raw = body(items)
    batch = parse_webhook(raw, NOW, LIMITS)
    anomalies, rejected = careful(raw, LIMITS)
    assert batch.anomalies == anomalies
    assert batch.rejected == rejected
    taken = fast(raw, LIMITS)
    if taken is not None:  # the fast way only ever takes a body with nothing to refuse
        assert rejected == []
        assert taken == anomalies


@CHECKS
@given(st.lists(alerts(), min_size=1, max_size=40), st.integers(0, 39))
def test_one_bad_alert_among_good_ones_is_named_and_the_good_ones_are_kept(
    items: list[dict[str, Any]], at: int
) -> None:
    good = [{"status": "firing", "labels": {"alertname": "A", "pod": f"p{i}"},
             "startsAt": "2026-11-26T11:58:01Z"} for i in range(40)]
    mixed = good[:at] + items[:1] + good[at:]
    raw = body(mixed)
    batch = parse_webhook(raw, NOW, LIMITS)
    anomalies, rejected = careful(raw, LIMITS)
    assert (batch.anomalies, batch.rejected) == (anomalies, rejected)
    assert len(batch.anomalies) >= 40  # none of the good ones is lost
    assert all(e.loc.startswith(f"alerts[{at}]") for e in batch.rejected)


def test_a_storm_is_read_the_fast_way_with_the_careful_way_s_result() -> None:
    items = [{"status": "firing", "startsAt": "2026-11-26T11:58:01.5Z",
              "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
              "labels": {"alertname": "PodDown", "service": f"svc-{i % 7}", "pod": f"p-{i}",
                         "zone": "é€ÿ"[: i % 4]},
              "annotations": {"summary": f"pod {i} is down"}} for i in range(500)]
    raw = body(items)
    batch = parse_webhook(raw, NOW)
    assert batch.rejected == []
    assert batch.anomalies == careful(raw, PayloadLimits())[0]
    assert len({a.fingerprint for a in batch.anomalies}) == 500
    assert fast(raw, PayloadLimits()) == batch.anomalies  # taken the fast way
