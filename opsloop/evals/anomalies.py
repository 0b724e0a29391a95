"""`opsloop eval anomalies`: run the detector on a NAB corpus and score it (opsloop.evals.nab)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsloop.detect import DetectorSettings, SeriesError, score_file
from opsloop.evals.nab import ProfileResult, ScoredSeries, load_windows, score_corpus, window_rows


class CorpusError(ValueError):
    """A windows file or data folder that cannot be scored; the message says which and why."""


@dataclass(frozen=True)
class AnomalyEval:
    results: list[ProfileResult]
    series: int
    rows: int
    windows: int
    seconds: float  # detection and scoring together


def evaluate_corpus(
    data: Path,
    windows_file: Path,
    settings: DetectorSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> AnomalyEval:
    """Score every series the windows file names (paths relative to `data`)."""
    started = time.perf_counter()
    try:
        windows = load_windows(json.loads(windows_file.read_text()))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{windows_file}: {exc}") from None
    if not windows:
        raise CorpusError(f"{windows_file}: names no series")
    corpus: list[ScoredSeries] = []
    for name in sorted(windows):
        path = data / name
        if not path.is_file():
            raise CorpusError(f"{windows_file} names {name!r} but {path} does not exist")
        try:
            series, scores = score_file(path, settings)
        except SeriesError as exc:
            raise CorpusError(str(exc)) from None
        corpus.append(ScoredSeries(name, scores, window_rows(series.timestamps, windows[name])))
        if progress is not None:
            progress(f"{name}: {len(scores)} rows")
    results = score_corpus(corpus)
    return AnomalyEval(
        results=results,
        series=len(corpus),
        rows=sum(len(s.scores) for s in corpus),
        windows=sum(len(s.windows) for s in corpus),
        seconds=time.perf_counter() - started,
    )
