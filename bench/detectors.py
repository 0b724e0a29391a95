"""Detector throughput: points scored per second, per series, for the ensemble.

Each NAB-format series is read, then scored from its first row with a fresh detector (the
time is the scoring alone, not the reading); the last row is the whole corpus. Without
--data it scores a synthetic week of one-minute points (what the simulator watch feeds it).

    .venv/bin/python bench/detectors.py [--data ../shared/data/nab/data] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opsloop.detect import read_series, score_values


def _synthetic() -> list[tuple[str, list[float], int]]:
    rng = random.Random(1)
    values = [100 + 10 * math.sin(2 * math.pi * i / 1440) + rng.gauss(0, 2)
              for i in range(7 * 1440)]
    return [("synthetic week, 1 point/min", values, 1440)]


def _corpus(data: Path) -> list[tuple[str, list[float], int]]:
    out = []
    for path in sorted(data.rglob("*.csv")):
        series = read_series(path)
        out.append((str(path.relative_to(data)), series.values, series.per_day))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a folder of NAB-format CSVs (recursively)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_dir():
        print(f"--data {args.data}: not a directory", file=sys.stderr)
        return 2
    corpus = _corpus(args.data) if args.data is not None else _synthetic()
    rows = []
    total_points, total_seconds = 0, 0.0
    for name, values, per_day in corpus:
        started = time.perf_counter()
        score_values(values, per_day)
        seconds = time.perf_counter() - started
        rows.append({"series": name, "points": len(values), "seconds": round(seconds, 3),
                     "points_per_second": round(len(values) / seconds)})
        total_points += len(values)
        total_seconds += seconds
    rows.append({"series": "all", "points": total_points, "seconds": round(total_seconds, 3),
                 "points_per_second": round(total_points / total_seconds)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="detector ensemble: points scored per second", title_justify="left")
    for column in ("series", "points", "seconds", "points/s"):
        table.add_column(column, justify="left" if column == "series" else "right")
    for r in rows:
        table.add_row(r["series"], str(r["points"]), f"{r['seconds']:.3f}",
                      f"{r['points_per_second']:,}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
