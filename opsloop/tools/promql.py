"""The metric-name → PromQL mapping (policies/prometheus/promql.yaml), and writing PromQL safely.

Queries are data operators edit; code only fills their `{service}` and `{window}` holes,
with values escaped for a PromQL string literal holding an RE2 regex.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator

from opsloop.models.catalog import METRICS
from opsloop.models.policy_file import PolicyFile

_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


class PromQLError(ValueError):
    """A PromQL mapping that cannot be used; the message names the file and the field."""


class PromQLPolicy(PolicyFile):
    metrics: dict[str, str] = Field(min_length=1)
    average: dict[str, str] = Field(default_factory=dict)
    catalog: str | None = None

    @field_validator("metrics", "average")
    @classmethod
    def _known_metrics_with_placeholder(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}; metrics: {', '.join(METRICS)}")
            if "{service}" not in query:
                raise ValueError(f"{name}: the query must contain {{service}} "
                                 f'(write service=~"{{service}}")')
        return value

    @field_validator("average")
    @classmethod
    def _average_has_window(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if "{window}" not in query:
                raise ValueError(f"{name}: an average query must contain {{window}}")
        return value


def regex_literal(value: str) -> str:
    """`value` as an RE2 regex matching exactly it, escaped for a double-quoted PromQL string."""
    escaped = "".join("\\" + c if c in _RE2_SPECIAL else c for c in value)
    return string_literal(escaped)


def string_literal(value: str) -> str:
    """Escape for the inside of a double-quoted PromQL string."""
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))


def duration(seconds: float) -> str:
    """A PromQL duration for `seconds`, in the largest unit that states it exactly."""
    ms = max(round(seconds * 1000), 1)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


class PromQLMap:
    """The queries for each catalog metric, ready to fill."""

    def __init__(self, policy: PromQLPolicy, source: str = "promql.yaml") -> None:
        self.policy = policy
        self.source = source

    def template(self, metric: str) -> str:
        try:
            return self.policy.metrics[metric]
        except KeyError:
            known = ", ".join(sorted(self.policy.metrics))
            raise KeyError(
                f"no PromQL for metric {metric!r} in {self.source}; it maps: {known}"
            ) from None

    def query(self, metric: str, service: str) -> str:
        """The instant-vector query for one service's metric."""
        return self.template(metric).replace("{service}", regex_literal(service))

    def average(self, metric: str, service: str, window_seconds: float, step_seconds: float) -> str:
        """Mean over the window: the operator's `average` query, else avg_over_time of a
        subquery sampled at the metrics' own resolution."""
        window = duration(window_seconds)
        custom = self.policy.average.get(metric)
        if custom is not None:
            return custom.replace("{service}", regex_literal(service)).replace("{window}", window)
        return f"avg_over_time(({self.query(metric, service)})[{window}:{duration(step_seconds)}])"


def load_promql(path: Path) -> PromQLMap:
    """Read and validate a PromQL mapping file; PromQLError says what to fix and where."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromQLError(f"{path}: file not found; it maps metric names to PromQL "
                          "(see policies/prometheus/promql.yaml)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise PromQLError(f"{path}: cannot read it: {exc}") from None
    try:
        policy = PromQLPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise PromQLError(f"{path}: {problems}") from None
    return PromQLMap(policy, str(path))
