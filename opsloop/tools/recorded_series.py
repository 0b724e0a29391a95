"""Metric series as a recording writes them: by hand, or pasted from Prometheus.

Three spellings, all one-minute resolution unless `step_seconds` says otherwise:
- `start` + `values`: one value per step from `start`;
- `points`: `[[time, value], ...]` where time is ISO 8601 or unix seconds and value may be
  a string, which is exactly a Prometheus `query_range` result's `values`;
- `start` + `segments`: `[[minutes, value], ...]` holds a value, `[[minutes, from, to]]`
  ramps linearly: the shorthand for writing an incident down by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Point = tuple[datetime, float]


def parse_time(value: Any) -> datetime:
    """ISO 8601 (a trailing Z is fine) or unix seconds; naive times are taken as UTC."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        at = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time or unix seconds") from None
    else:
        raise ValueError(f"{value!r} is not a time")
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class SeriesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None
    step_seconds: int = Field(default=60, gt=0)
    values: list[float] | None = None
    points: list[tuple[Any, Any]] | None = None
    segments: list[list[float]] | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return None if value is None else parse_time(value)

    @model_validator(mode="after")
    def _one_spelling(self) -> SeriesSpec:
        given = [n for n in ("values", "points", "segments") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of values, points or segments")
        for i, seg in enumerate(self.segments or []):
            if len(seg) not in (2, 3) or seg[0] < 1 or seg[0] != int(seg[0]):
                raise ValueError(
                    f"segments[{i}]: expected [minutes, value] or [minutes, from, to] with "
                    f"whole minutes >= 1, got {seg}"
                )
        return self

    def steps(self) -> list[float]:
        """The values one step apart (for `values` and `segments`)."""
        if self.values is not None:
            return list(self.values)
        out: list[float] = []
        for seg in self.segments or []:
            n = int(seg[0])
            if len(seg) == 2:
                out += [seg[1]] * n
            else:
                out += [seg[1] + (seg[2] - seg[1]) * (i + 1) / n for i in range(n)]
        return out

    def resolve(self, default_start: datetime | None = None) -> list[Point]:
        """Absolute (time, value) points, oldest first."""
        if self.points is not None:
            pts = []
            for i, (at, value) in enumerate(self.points):
                try:
                    pts.append((parse_time(at), float(value)))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"points[{i}]: {exc}") from None
            return sorted(pts)
        start = self.start or default_start
        if start is None:
            raise ValueError("values and segments need a `start` time")
        step = timedelta(seconds=self.step_seconds)
        return [(start + i * step, v) for i, v in enumerate(self.steps())]

    def after(self, moment: datetime) -> list[Point]:
        """An outcome's series: the first value is the step after `moment`."""
        if self.points is not None:
            raise ValueError("outcome series are relative to the action: use values or segments")
        step = timedelta(seconds=self.step_seconds)
        return [(moment + (i + 1) * step, v) for i, v in enumerate(self.steps())]
