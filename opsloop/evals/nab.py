"""NAB scoring, written from the rules in NAB's paper and README (see ../shared/data/nab/).

For each labelled window a detector earns the scaled sigmoid of its first detection's position
in the window (the window's start earns the most, its end nothing); a window it never detects
costs `fn`; a detection outside every window costs `fp` times the (negative) sigmoid of how far
past the last window it is (-1 before any window). The first 15% of a series (at most 750 rows)
is probation: detections there are ignored. One threshold for the whole corpus is chosen per
profile to maximise the raw score, which is then normalised: no detections = 0, perfect = 100.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


@dataclass(frozen=True)
class ScoredSeries:
    """One series as the scorer needs it: its scores and its windows as row indices."""

    name: str
    scores: Sequence[float]
    windows: Sequence[tuple[int, int]]  # inclusive (first row, last row), in order


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    score: float  # normalised: null detector 0, perfect 100
    raw: float
    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int


def scaled_sigmoid(x: float) -> float:
    """2·sigmoid(-5x) - 1: about +0.987 at x = -1 (a window's start), 0 at its end, -1 far past."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n: int) -> int:
    return min(math.floor(PROBATION_FRACTION * n), PROBATION_MAX_ROWS)


def row_weights(n: int, windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the unweighted value of a detection there, and its window's number (-1: none)."""
    value = np.empty(n)
    window_of = np.full(n, -1, dtype=np.int64)
    previous: tuple[int, int] | None = None
    ordered = sorted(windows)
    w = 0
    for i in range(n):
        while w < len(ordered) and ordered[w][1] < i:
            previous = ordered[w]
            w += 1
        if w < len(ordered) and ordered[w][0] <= i:
            first, last = ordered[w]
            value[i] = scaled_sigmoid(-(last - i + 1) / (last - first + 1))
            window_of[i] = w
        elif previous is None:
            value[i] = -1.0
        else:
            width = previous[1] - previous[0] + 1
            value[i] = scaled_sigmoid((i - previous[1]) / max(width - 1, 1))
    return value, window_of


@dataclass
class _Sweep:
    """Raw-score parts at every candidate threshold, shared by the three profiles."""

    thresholds: np.ndarray  # descending; a detection is a score >= threshold
    tp_sum: np.ndarray  # sum of first-detection sigmoids over detected windows
    tp_count: np.ndarray
    fp_sum: np.ndarray  # sum of (negative) sigmoids of detections outside windows
    fp_count: np.ndarray
    windows: int
    perfect_tp: float


def _sweep(corpus: Sequence[ScoredSeries]) -> _Sweep:
    scores: list[np.ndarray] = []
    values: list[np.ndarray] = []
    window_ids: list[np.ndarray] = []
    n_windows = 0
    perfect = 0.0
    for series in corpus:
        n = len(series.scores)
        start = probation_rows(n)
        value, window_of = row_weights(n, series.windows)
        scores.append(np.asarray(series.scores, dtype=float)[start:])
        values.append(value[start:])
        window_ids.append(np.where(window_of[start:] >= 0, window_of[start:] + n_windows, -1))
        for first, last in series.windows:
            perfect += scaled_sigmoid(-(last - max(first, start) + 1) / (last - first + 1))
        n_windows += len(series.windows)
    score = np.concatenate(scores) if scores else np.empty(0)
    value = np.concatenate(values) if values else np.empty(0)
    window = np.concatenate(window_ids) if window_ids else np.empty(0, dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    best = np.full(n_windows, -np.inf)  # best (earliest) sigmoid per window so far
    tp_sum = tp_count = fp_sum = 0.0
    fp_count = 0
    out_t, out_tp, out_tpc, out_fp, out_fpc = [math.inf], [0.0], [0], [0.0], [0]
    k = 0
    total = len(order)
    while k < total:
        t = score[order[k]]
        while k < total and score[order[k]] == t:
            i = order[k]
            w = window[i]
            if w < 0:
                fp_sum += value[i]
                fp_count += 1
            elif value[i] > best[w]:
                if best[w] == -np.inf:
                    tp_count += 1
                    tp_sum += value[i]
                else:
                    tp_sum += value[i] - best[w]
                best[w] = value[i]
            k += 1
        out_t.append(float(t))
        out_tp.append(tp_sum)
        out_tpc.append(int(tp_count))
        out_fp.append(fp_sum)
        out_fpc.append(fp_count)
    return _Sweep(np.array(out_t), np.array(out_tp), np.array(out_tpc), np.array(out_fp),
                  np.array(out_fpc), n_windows, perfect)


def score_corpus(
    corpus: Sequence[ScoredSeries], profiles: Sequence[Profile] = PROFILES
) -> list[ProfileResult]:
    """Each profile's normalised score at the corpus-wide threshold that maximises its raw score."""
    sweep = _sweep(corpus)
    results = []
    for p in profiles:
        missed = sweep.windows - sweep.tp_count
        raw = p.tp * sweep.tp_sum + p.fp * sweep.fp_sum - p.fn * missed
        best = int(np.argmax(raw))  # the first (highest) threshold among equals
        null = -p.fn * sweep.windows
        perfect = p.tp * sweep.perfect_tp
        span = perfect - null
        results.append(ProfileResult(
            profile=p.name,
            score=float(100.0 * (raw[best] - null) / span) if span > 0 else 0.0,
            raw=float(raw[best]),
            threshold=float(sweep.thresholds[best]),
            true_positives=int(sweep.tp_count[best]),
            false_positives=int(sweep.fp_count[best]),
            false_negatives=int(missed[best]),
        ))
    return results


def window_rows(
    timestamps: Sequence[str], windows: Sequence[Sequence[str]]
) -> list[tuple[int, int]]:
    """NAB's windows (first and last timestamp) as inclusive row ranges of this series."""
    from bisect import bisect_left, bisect_right

    stamps = [_stamp(t) for t in timestamps]
    rows = []
    for start, end in windows:
        first = bisect_left(stamps, _stamp(start))
        last = bisect_right(stamps, _stamp(end)) - 1
        if first <= last:
            rows.append((first, last))
    return rows


def _stamp(text: str) -> str:
    """A timestamp comparable as text: 'YYYY-MM-DD HH:MM:SS' (NAB's fractions dropped)."""
    return text.strip().replace("T", " ")[:19]


def load_windows(data: Mapping[str, object]) -> dict[str, list[list[str]]]:
    """combined_windows.json: relative CSV path -> [[start, end], ...], checked."""
    out: dict[str, list[list[str]]] = {}
    for name, windows in data.items():
        if not isinstance(windows, list) or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(t, str) for t in w)
            for w in windows
        ):
            raise ValueError(f"windows for {name!r}: expected a list of [start, end] strings")
        out[name] = windows
    return out
