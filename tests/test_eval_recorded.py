"""The recorded backend: only what was recorded is served; actions show their recorded effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from opsloop.models import ActionStatus, RemediationAction, ToolStatus
from opsloop.tools.recorded import RecordedProduction, RecordingError, load_recording
from opsloop.tools.recorded_series import SeriesSpec
from opsloop.tools.toolbox import Toolbox

NOW = datetime(2025, 6, 11, 16, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=29)


def _write(folder: Path, **files: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(content), encoding="utf-8")
    return folder


@pytest.fixture
def recording(tmp_path: Path) -> RecordedProduction:
    folder = _write(
        tmp_path / "case",
        services=[{"name": "web", "tier": 1, "replicas": 6, "version": "5.4.0",
                   "dependencies": ["api"]},
                  {"name": "api", "tier": 1, "replicas": 6, "version": "2.0"}],
        metrics={"web": {"error_ratio": {"start": START.isoformat(),
                                         "segments": [[20, 0.001], [10, 0.3]]}}},
        priors={"web": {"error_ratio": 0.0002}},
        outcomes=[{"when": {"type": "rollback_deploy", "service": "web"},
                   "series": {"web": {"error_ratio": {"segments": [[15, 0.001]]}}}}],
    )
    (folder / "logs").mkdir()
    (folder / "logs" / "web.log").write_text(
        f"{(NOW - timedelta(minutes=2)).isoformat()} ERROR TypeError in render (version 5.4.0)\n"
        f"{(NOW + timedelta(minutes=5)).isoformat()} ERROR a line from the future\n")
    return RecordedProduction(load_recording(folder, NOW))


def test_a_call_with_no_recording_returns_no_data(recording: RecordedProduction) -> None:
    tools = Toolbox(recording, clock=recording)
    assert tools.call("metric_stat", service="api", metric="error_ratio").status is (
        ToolStatus.NO_DATA)
    assert tools.call("metric_stat", service="web", metric="latency_p99_ms").status is (
        ToolStatus.NO_DATA)
    assert tools.call("recent_deploys", service="web").data["count"] == 0
    assert tools.call("log_search", service="api", pattern="error").data["count"] == 0
    ok = tools.call("metric_stat", service="web", metric="error_ratio", minutes=5)
    assert ok.status is ToolStatus.OK and ok.data["value"] == pytest.approx(0.3)


def test_unknown_names_are_errors_not_no_data(recording: RecordedProduction) -> None:
    tools = Toolbox(recording, clock=recording)
    assert tools.call("metric_stat", service="nope", metric="error_ratio").status is (
        ToolStatus.ERROR)


def test_nothing_after_now_is_visible_until_the_clock_gets_there(
        recording: RecordedProduction) -> None:
    assert [ln.message for ln in recording.logs("web", 60)] == [
        "TypeError in render (version 5.4.0)"]
    recording.wait(10)
    assert len(recording.logs("web", 60)) == 2


def test_a_matching_action_shows_its_recorded_outcome_until_reverted(
        recording: RecordedProduction) -> None:
    wrong = recording.execute(RemediationAction(id="a1", type="restart", service="web"), "k1")
    assert wrong.status is ActionStatus.SUCCEEDED and "no outcome" in wrong.detail
    recording.wait(3)
    assert recording.metric("web", "error_ratio", 3).values() == []  # nothing recorded: no data
    fix = recording.execute(
        RemediationAction(id="a2", type="rollback_deploy", service="web",
                          params={"to_version": "5.3.1"}), "k2")
    assert "recorded outcome applies" in fix.detail and fix.undo
    recording.wait(5)
    assert recording.metric("web", "error_ratio", 5).values() == [0.001] * 5
    assert recording.deploys("web", 10)[-1].kind == "rollback"
    assert recording.services()[0].version == "5.3.1"
    undone = recording.revert(fix, "r2")
    assert undone.status is ActionStatus.SUCCEEDED
    recording.wait(3)
    assert recording.metric("web", "error_ratio", 3).values() == []
    assert recording.revert(fix, "r3").status is ActionStatus.SKIPPED
    assert recording.execute(RemediationAction(id="a2", type="rollback_deploy", service="web"),
                             "k2").replayed
    assert [key for _, key in recording.asked] == ["k1", "k2"]


def test_averages_fill_unrecorded_minutes_with_the_prior(recording: RecordedProduction) -> None:
    mean = recording.average("web", "error_ratio", 40_320)
    assert mean == pytest.approx((20 * 0.001 + 10 * 0.3 + 0.0002 * (40_320 - 30)) / 40_320)
    assert recording.average("api", "error_ratio", 60) is None


def test_series_spellings_agree() -> None:
    values = SeriesSpec(start=NOW, values=[1, 2, 3]).resolve()
    prom = SeriesSpec(points=[[NOW.timestamp() + 60 * i, str(v)] for i, v in enumerate([1, 2, 3])]
                      ).resolve()
    ramp = SeriesSpec(start=NOW, segments=[[1, 1], [2, 1, 3]]).resolve()
    assert values == prom == ramp


def test_bad_recordings_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"services\.yaml"):
        load_recording(_write(tmp_path / "a", metrics={}), NOW)
    folder = _write(tmp_path / "b", services=[{"name": "web", "tier": 1, "replicas": 1,
                                               "version": "1"}],
                    metrics={"web": {"error_rate": {"start": NOW.isoformat(), "values": [1]}}})
    with pytest.raises(RecordingError, match=r"metrics.web: unknown metric\(s\) error_rate"):
        load_recording(folder, NOW)
    folder = _write(tmp_path / "c", services=[{"name": "web", "tier": 1, "replicas": 1,
                                               "version": "1"}],
                    metrics={"web": {"error_ratio": {"values": [1], "segments": [[1, 1]]}}})
    with pytest.raises(RecordingError, match="exactly one of values, points or segments"):
        load_recording(folder, NOW)
