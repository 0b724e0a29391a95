"""Streaming anomaly detectors: past only, bounded, checkpointable, and they see a fault."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.detect import Ensemble, points_per_day, score_values

PER_DAY = 96  # 15-minute points keep the series short and the seasonal history real


def _daily_series(days: int, seed: int = 3, spike_at: int | None = None) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(days * PER_DAY):
        v = 100 + 20 * math.sin(2 * math.pi * i / PER_DAY) + rng.gauss(0, 2)
        out.append(v + (60.0 if spike_at is not None and i == spike_at else 0.0))
    return out


SERIES = _daily_series(12, spike_at=10 * PER_DAY + 30)


def test_scores_use_only_the_past() -> None:
    full = score_values(SERIES, PER_DAY)
    cut = int(len(SERIES) * 0.6)
    assert score_values(SERIES[:cut], PER_DAY) == full[:cut]
    # And a change in the future never reaches back: a different tail, the same head.
    other_tail = SERIES[:cut] + [v * 3 for v in SERIES[cut:]]
    assert score_values(other_tail, PER_DAY)[:cut] == full[:cut]


def test_scores_are_in_the_unit_interval_and_the_spike_scores_highest() -> None:
    scores = score_values(SERIES, PER_DAY)
    assert all(0.0 <= s < 1.0 for s in scores)
    assert max(range(len(scores)), key=scores.__getitem__) == 10 * PER_DAY + 30
    assert scores[10 * PER_DAY + 30] > 0.6


def test_a_restored_detector_continues_exactly_where_the_saved_one_stopped() -> None:
    cut = 7 * PER_DAY
    first = Ensemble(PER_DAY)
    head = [first.update(v) for v in SERIES[:cut]]
    state = json.loads(json.dumps(first.state()))  # survives a trip through JSON
    second = Ensemble.restore(state)
    tail = [second.update(v) for v in SERIES[cut:]]
    assert head + tail == score_values(SERIES, PER_DAY)


def test_state_is_bounded_whatever_the_series_length() -> None:
    detector = Ensemble(PER_DAY)
    sizes = []
    for days in (10, 30):
        for v in _daily_series(days):
            detector.update(v)
        sizes.append(len(json.dumps(detector.state())))
    assert sizes[1] <= sizes[0] * 1.05


def test_points_per_day_come_from_the_timestamps() -> None:
    assert points_per_day(["2014-04-01 00:00:00", "2014-04-01 00:05:00",
                           "2014-04-01 00:10:00"]) == 288
    assert points_per_day(["2011-07-01 00:15:01", "2011-07-01 01:15:01"]) == 24


def _write_csv(path: Path, values: list[float]) -> None:
    start = datetime(2026, 11, 1)
    rows = ["timestamp,value"] + [
        f"{start + timedelta(minutes=15 * i):%Y-%m-%d %H:%M:%S},{v:.3f}"
        for i, v in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")


def test_detect_writes_one_scored_row_per_input_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in" / "series.csv"
    source.parent.mkdir()
    _write_csv(source, SERIES)
    assert main(["--work-dir", str(tmp_path), "detect", str(source),
                 "--output-dir", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "series.csv").read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert len(lines) == len(SERIES) + 1
    assert lines[1].split(",")[:2] == ["2026-11-01 00:00:00", f"{SERIES[0]:.3f}"]
    assert "[1/1]" in capsys.readouterr().err


def test_detect_names_the_line_of_a_bad_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2026-11-01 00:00:00,1\n2026-11-01 00:05:00,lots\n")
    assert main(["--work-dir", str(tmp_path), "detect", str(bad),
                 "--output-dir", str(tmp_path / "out")]) == 1
    assert "bad.csv:3: value 'lots' is not a number" in capsys.readouterr().err


def test_eval_anomalies_scores_a_small_corpus(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    _write_csv(data / "cat" / "a.csv", SERIES)
    spike_day = 10 + 1  # the spike is on day 11 (2026-11-11), at 07:30
    windows = {"cat/a.csv": [[f"2026-11-{spike_day:02d} 06:00:00.000000",
                              f"2026-11-{spike_day:02d} 09:00:00.000000"]]}
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    assert main(["--work-dir", str(tmp_path), "eval", "anomalies", "--data", str(data),
                 "--windows", str(tmp_path / "windows.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    standard = result["profiles"][0]
    assert standard["profile"] == "standard" and standard["true_positives"] == 1
    assert standard["score"] > 50


def test_eval_anomalies_says_what_is_missing_or_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--work-dir", str(tmp_path), "eval", "anomalies"]
    assert main(base) == 1
    assert "needs --data DIR and --windows FILE" in capsys.readouterr().err
    (tmp_path / "windows.json").write_text(json.dumps({"cat/missing.csv": []}))
    assert main([*base, "--data", str(tmp_path), "--windows",
                 str(tmp_path / "windows.json")]) == 1
    err = capsys.readouterr().err
    assert "names 'cat/missing.csv'" in err and "does not exist" in err
    (tmp_path / "windows.json").write_text(json.dumps({"a.csv": "soon"}))
    assert main([*base, "--data", str(tmp_path), "--windows",
                 str(tmp_path / "windows.json")]) == 1
    assert "expected a list of [start, end] strings" in capsys.readouterr().err
