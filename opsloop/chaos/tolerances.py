"""Tolerances for HTTP probes whose JSON body carries a number (`{"value": 0.004}`).

Chaos Toolkit's own `range` tolerance reads a bare number; the simulator and most metric APIs
answer with a JSON object, so an experiment names one of these as a `probe` tolerance. The
engine passes the probe's output as `value`: `{"status": ..., "headers": ..., "body": ...}`.
A missing, non-numeric or failed reading is out of tolerance: no data never passes a check.
"""

from __future__ import annotations

import math
from typing import Any


def reading(value: Any, field: str = "value") -> float | None:
    """The number at `body[field]` of an HTTP probe's output (or a bare number); else None."""
    if isinstance(value, dict) and "body" in value:
        if not 200 <= int(value.get("status") or 0) < 300:
            return None
        value = value["body"]
    if isinstance(value, dict):
        value = value.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def at_most(limit: float, value: Any = None, field: str = "value") -> bool:
    """True when the probe read a number no greater than `limit`."""
    number = reading(value, field)
    return number is not None and number <= limit


def at_least(limit: float, value: Any = None, field: str = "value") -> bool:
    """True when the probe read a number no smaller than `limit`."""
    number = reading(value, field)
    return number is not None and number >= limit
