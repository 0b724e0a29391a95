"""Shared building blocks of the policy schemas: strict models, durations, outcomes."""

from __future__ import annotations

import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field

from opsloop.models import DecisionOutcome, Severity
from opsloop.models.policy_file import PolicyFile, StrictModel

__all__ = [
    "ALL_SEVERITIES",
    "DecisionOutcome",
    "Minutes",
    "PolicyFile",
    "Severity",
    "StrictModel",
    "format_minutes",
    "strictest",
]

ALL_SEVERITIES: tuple[Severity, ...] = tuple(Severity)


_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}


def _parse_minutes(value: Any) -> Any:
    # Operators write "5m", "1h", "28d" (OpenSLO style); a bare integer means minutes.
    if isinstance(value, bool):
        raise ValueError("not a duration: write a number with m, h or d, e.g. 5m, 1h, 28d")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]
    raise ValueError("not a duration: write a number with m, h or d, e.g. 5m, 1h, 28d")


Minutes = Annotated[int, BeforeValidator(_parse_minutes), Field(gt=0)]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone, e.g. UTC or "
                         f"Europe/Berlin") from None
    return value


ZoneName = Annotated[str, AfterValidator(_zone)]  # an IANA time zone, e.g. UTC


def format_minutes(minutes: int) -> str:
    """The shortest exact spelling of a duration: 60 -> 1h, 4320 -> 3d, 30 -> 30m."""
    for unit, size in (("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


_ORDER = {DecisionOutcome.AUTO: 0, DecisionOutcome.NEEDS_APPROVAL: 1, DecisionOutcome.DENY: 2}


def strictest(*outcomes: DecisionOutcome) -> DecisionOutcome:
    """Guardrails compose by taking the strictest answer, so no rule can loosen another."""
    return max(outcomes, key=_ORDER.__getitem__)
