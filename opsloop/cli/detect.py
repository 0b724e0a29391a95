"""`opsloop detect CSV... --output-dir DIR`: score NAB-format series with the detector ensemble,
and the settings options `opsloop eval anomalies` shares."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

if TYPE_CHECKING:
    from opsloop.detect import DetectorSettings

# Options named after DetectorSettings' fields (season_days -> --season-days).
_SETTING_HELP = {
    "season_days": "days of same-time-of-day history the seasonal baseline keeps",
    "block_days": "days per block whose largest surprise sets the usual extreme",
    "blocks": "blocks the usual extreme is the median of",
    "quiet_days": "after a reported peak, lower scores are held at 0 this many days",
    "shift_days": "days of recent points the level-shift view averages (0: off)",
    "shift_baseline_days": "days of points before them whose median is the old level",
    "distribution_points": "recent points in the distribution view's histogram (0: off)",
    "distribution_bins": "bins of the distribution view's histogram",
    "level_alpha": "smoothing of the forecast (weight of the newest value)",
    "error_alpha": "memory of the usual error (weight of the newest error)",
}


_MAY_BE_ZERO = {"quiet_days", "shift_days", "shift_baseline_days", "distribution_points"}


def add_detector_options(p: argparse.ArgumentParser) -> None:
    """--season-days, --quiet-days, ...: one option per detector setting (default: built in)."""
    from opsloop.detect import DetectorSettings

    defaults = DetectorSettings()
    for f in fields(DetectorSettings):
        kind = int if isinstance(getattr(defaults, f.name), int) else float
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f"detector_{f.name}", type=kind,
                       metavar="N", help=f"{_SETTING_HELP[f.name]} (default "
                                         f"{getattr(defaults, f.name)})")


def detector_settings(args: argparse.Namespace) -> DetectorSettings:
    from opsloop.detect import DetectorSettings

    chosen: dict[str, Any] = {}
    for f in fields(DetectorSettings):
        value = getattr(args, f"detector_{f.name}", None)
        if value is not None:
            if value < 0 or (value == 0 and f.name not in _MAY_BE_ZERO):
                raise UserError(f"--{f.name.replace('_', '-')} {value}: must be positive")
            chosen[f.name] = value
    return DetectorSettings(**chosen)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("detect", parents=[common],
                       help="score timestamp,value CSV files with the anomaly detectors")
    p.add_argument("csv", nargs="+", type=Path, metavar="CSV",
                   help="NAB-format input: a `timestamp,value` header, rows in time order")
    p.add_argument("--output-dir", type=Path, required=True, metavar="DIR",
                   help="writes DIR/<file name> with columns timestamp,value,anomaly_score")
    add_detector_options(p)
    p.set_defaults(handler=detect)


def detect(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    import time

    from opsloop.detect import SeriesError, score_file, write_scores

    chosen = detector_settings(args)
    out_dir: Path = args.output_dir
    names = [p.name for p in args.csv]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UserError(f"two inputs share the file name {', '.join(clashes)}; outputs are "
                        "named after inputs, so score them into separate --output-dir")
    for i, path in enumerate(args.csv, start=1):
        started = time.perf_counter()
        try:
            series, scores = score_file(path, chosen)
        except SeriesError as exc:
            raise UserError(str(exc)) from None
        target = out_dir / path.name
        if target.resolve() == path.resolve():
            raise UserError(f"{target}: would overwrite its input; choose another --output-dir")
        write_scores(target, series, scores)
        ui.err.print(f"[{i}/{len(args.csv)}] {path} → {target}: {len(scores)} rows, "
                     f"{series.per_day} per day, {time.perf_counter() - started:.2f}s",
                     markup=False)
    return 0
