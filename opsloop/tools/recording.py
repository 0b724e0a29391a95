"""A recording: one real incident's tool outputs captured as files in a case folder, read
and checked (the format is written up in evals/README.md). `recorded.py` serves it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.models import (
    ChaosExperiment,
    DeployEvent,
    FlagChange,
    FlagState,
    LogLine,
    ParamValue,
    RemediationAction,
    ServiceInfo,
)
from opsloop.models.catalog import METRICS
from opsloop.tools.recorded_series import SeriesSpec, parse_time

SeriesMap = dict[str, dict[str, SeriesSpec]]  # service -> metric -> series


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the file and the field."""


class ActionMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    service: str
    params: dict[str, ParamValue] = Field(default_factory=dict)  # must all be present

    def matches(self, action: RemediationAction) -> bool:
        return (
            action.type == self.type
            and action.service == self.service
            and all(str(action.params.get(k)) == str(v) for k, v in self.params.items())
        )


class Outcome(BaseModel):
    """What production did after an action; series start the minute after it ran."""

    model_config = ConfigDict(extra="forbid")

    when: ActionMatch
    series: SeriesMap = Field(default_factory=dict)
    note: str = ""


class FlagsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    states: list[FlagState] = Field(default_factory=list)
    changes: list[FlagChange] = Field(default_factory=list)


class Recording(BaseModel):
    """Everything the agents may ask about one incident."""

    now: datetime
    services: list[ServiceInfo]
    metrics: SeriesMap = Field(default_factory=dict)
    priors: dict[str, dict[str, float]] = Field(default_factory=dict)  # long-run means
    logs: list[LogLine] = Field(default_factory=list)
    deploys: list[DeployEvent] = Field(default_factory=list)
    flags: FlagsFile = Field(default_factory=FlagsFile)
    experiments: list[ChaosExperiment] = Field(default_factory=list)
    outcomes: list[Outcome] = Field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise RecordingError(f"{path}: cannot read: {exc}") from None


def _section(folder: Path, name: str) -> Any:
    for suffix in (".yaml", ".yml", ".json"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            return _read(path)
    return None


def _log_files(folder: Path) -> list[dict[str, Any]]:
    """`logs/<service>.log`, one `<ISO time> <LEVEL> <message>` per line, as exported."""
    lines: list[dict[str, Any]] = []
    for path in sorted((folder / "logs").glob("*.log")) if (folder / "logs").is_dir() else []:
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            parts = raw.split(None, 2)
            if len(parts) < 3:
                raise RecordingError(f"{path}:{n}: expected '<time> <LEVEL> <message>'")
            try:
                at = parse_time(parts[0])
            except ValueError as exc:
                raise RecordingError(f"{path}:{n}: {exc}") from None
            lines.append({"at": at, "service": path.stem, "level": parts[1].upper(),
                          "message": parts[2]})
    return lines


def load_recording(folder: Path, now: datetime) -> Recording:
    """Read a case folder's recorded tool outputs (every section but services is optional)."""
    data: dict[str, Any] = {"now": now}
    for name in ("services", "metrics", "priors", "deploys", "flags", "experiments", "outcomes"):
        value = _section(folder, name)
        if value is not None:
            data[name] = value
    if "services" not in data:
        raise RecordingError(f"{folder}: a recording needs services.yaml (the topology)")
    logs = _section(folder, "logs") or []
    data["logs"] = [*logs, *_log_files(folder)]
    try:
        recording = Recording.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordingError(f"{folder}: {where}: {first['msg']}") from None
    names = {s.name for s in recording.services}
    for label, series in [("metrics", recording.metrics),
                          *[(f"outcomes[{i}].series", o.series)
                            for i, o in enumerate(recording.outcomes)]]:
        for service, metrics in series.items():
            if service not in names:
                raise RecordingError(f"{folder}: {label}: service {service!r} is not in services")
            bad = sorted(set(metrics) - set(METRICS))
            if bad:
                raise RecordingError(f"{folder}: {label}.{service}: unknown metric(s) "
                                     f"{', '.join(bad)}; metrics: {', '.join(METRICS)}")
    return recording


