"""Property-based: thousands of generated payloads (hundreds in `make test`) against the
webhook of a real server on loopback. Never a 5xx; every valid alert of a batch is taken in
however broken its peers."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.policy import load_policies
from opsloop.settings import Settings

TOKEN = "fuzz-ingest-token-0123456789"
PATH = "/api/v1/alerts/alertmanager"
# Derandomized: CI sees the same thousands of payloads every run, and no example database.
FUZZ = settings(max_examples=1200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client,
                                                                       IntakeRuntime]]:
    work = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(work_dir=work, api_tokens=SecretStr(f"fuzz:ingest:{TOKEN}"),
                            api_max_body_bytes=256 * 1024)
    runtime = IntakeRuntime(app_settings, load_policies(app_settings.policies_dir))
    with running_api(runtime, load_tokens(app_settings)) as api, \
            httpx.Client(base_url=api.url, timeout=30,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client, runtime


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=5),
                     st.dictionaries(st.text(max_size=10), inner, max_size=5))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    _nested, max_leaves=25,
)
_FIRST = string.ascii_letters + "_"
label_names = st.builds(lambda a, b: a + b, st.sampled_from(_FIRST),
                        st.text(alphabet=_FIRST + string.digits, max_size=12))
# Any Unicode a JSON string can carry, lone surrogates included.
texts = st.text(st.characters(codec=None), max_size=30)
valid_texts = st.text(max_size=30)
zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5.5))])
timestamps = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                          timezones=zones).map(lambda d: d.isoformat())


@st.composite
def valid_alert(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "labels": draw(st.dictionaries(label_names, valid_texts, min_size=1, max_size=4)),
        "annotations": draw(st.dictionaries(valid_texts, valid_texts, max_size=2)),
        "startsAt": draw(timestamps),
    }
    if draw(st.booleans()):
        alert["endsAt"] = draw(st.sampled_from(["0001-01-01T00:00:00Z"]) | timestamps)
    if draw(st.booleans()):
        alert["generatorURL"] = draw(valid_texts)
    return alert


@st.composite
def broken_alert(draw: st.DrawFn) -> Any:
    """An alert certain to be invalid: one required field gone or of the wrong kind."""
    alert: dict[str, Any] = draw(valid_alert())
    how = draw(st.sampled_from(["drop", "labels", "label_value", "status", "startsAt",
                                "not_object", "surrogate"]))
    if how == "drop":
        del alert[draw(st.sampled_from(["status", "labels", "startsAt"]))]
    elif how == "labels":
        alert["labels"] = draw(st.none() | st.integers() | st.lists(st.integers()) | st.just({}))
    elif how == "label_value":
        alert["labels"]["alertname"] = draw(st.integers() | st.none() | st.booleans()
                                            | st.lists(st.text(max_size=3), max_size=2))
    elif how == "status":
        alert["status"] = draw(st.sampled_from(["FIRING", "pending", "", "resolved "])
                               | st.integers() | st.none() | st.lists(st.just("firing")))
    elif how == "startsAt":
        alert["startsAt"] = draw(st.integers() | st.floats() | st.none()
                                 | st.text(alphabet="0123456789-:TZ", max_size=12))
    elif how == "surrogate":
        alert["labels"]["alertname"] = "\ud800" + draw(valid_texts)
    else:
        return draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return alert


def post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(PATH, content=body, headers={"Content-Type": "application/json"})


# `make test` tries a few hundred payloads per property; the slow run (CI) the full thousands.
QUICK, FULL = 150, 1200
EXAMPLES = pytest.mark.parametrize(
    "examples", [QUICK, pytest.param(FULL, marks=pytest.mark.slow)])


@EXAMPLES
def test_any_json_gets_an_answer_below_500(server: tuple[httpx.Client, IntakeRuntime],
                                           examples: int) -> None:
    client, _ = server

    @settings(FUZZ, max_examples=examples)
    @given(body=json_values)
    def check(body: Any) -> None:
        answer = post(client, json.dumps(body).encode())
        assert answer.status_code < 500, answer.text
        assert answer.status_code in (200, 400, 413, 422)

    check()


@EXAMPLES
def test_any_bytes_get_an_answer_below_500(server: tuple[httpx.Client, IntakeRuntime],
                                           examples: int) -> None:
    client, _ = server

    @settings(FUZZ, max_examples=examples)
    @given(body=st.binary(max_size=300))
    def check(body: bytes) -> None:
        assert post(client, body).status_code in (200, 400, 413, 422)

    check()


@EXAMPLES
def test_no_valid_alert_is_lost_beside_broken_ones(server: tuple[httpx.Client, IntakeRuntime],
                                                   examples: int) -> None:
    client, runtime = server

    @settings(FUZZ, max_examples=examples // 2)  # each example is a whole batch of alerts
    @given(alerts=st.lists(st.tuples(st.booleans(), valid_alert(), broken_alert()), max_size=6),
           extra=st.dictionaries(st.sampled_from(["receiver", "groupKey", "status",
                                                  "commonLabels", "truncatedAlerts"]),
                                 json_values, max_size=2))
    def check(alerts: list[tuple[bool, dict[str, Any], Any]], extra: dict[str, Any]) -> None:
        batch = [good if keep else bad for keep, good, bad in alerts]
        valid = sum(1 for keep, _, _ in alerts if keep)
        before = runtime.grouper.stats.received
        answer = post(client, json.dumps({"version": "4", **extra, "alerts": batch}).encode())
        assert answer.status_code in (200, 422), answer.text
        body = answer.json()
        assert body["accepted"] == valid, body
        assert runtime.grouper.stats.received - before == valid
        if valid < len(batch):
            assert answer.status_code == 422
            assert all(e["loc"].startswith(("alerts[", "receiver", "groupKey", "status",
                                             "commonLabels", "truncatedAlerts"))
                       for e in body["detail"])

    check()
