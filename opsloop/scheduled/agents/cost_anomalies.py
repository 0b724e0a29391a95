"""Cost anomalies: hourly spend per service / region / usage type against expected spend.

Expected spend is opsloop.forecast's forecast (the capacity agent's model and its documented
rule: ETS with daily seasonality from three days of hourly history, MSTL with daily and
weekly seasonality from three weeks when the weekly pattern earns its place) fitted to the
`history` hours before the judged `window` and run across it. An hour is above expected
when its spend is over the forecast's upper 95% bound; consecutive such hours are one
anomaly, with the fields cloud anomaly detection uses:

- start, end (the end of the last hour above; `ongoing` when that is the window's last hour);
- root-cause dimensions: service, region, usage type (each series is one combination);
- actual and expected spend over the anomaly, total impact (actual - expected, USD) and
  impact % (impact / expected).

`decide` (pure, names the rule): below `raise_at` (both USD and %) an anomaly is only listed;
past it, raised; past both of `escalate_at`'s values, escalated to a person. An anomaly a
planned-activity mark covers (cost_planned: its dimensions, within the mark's window) is
listed as planned and not raised again. Spend below expected is not
an anomaly here (the monthly review shows both directions).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from opsloop.forecast import Kind, forecast
from opsloop.forecast.model import NotEnoughHistory
from opsloop.policy.schema.capacity import CostPolicy
from opsloop.scheduled.agents.cost_planned import PLANNED, covers

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Decision:
    """What to do about one anomaly, and the capacity.yaml rule that decided it."""

    action: str  # list | raise | escalate | planned
    rule: str
    reason: str


def decide(impact_usd: float, impact_pct: float | None, policy: CostPolicy,
           planned: dict[str, Any] | None = None) -> Decision:
    """Escalate past both escalate_at values, raise past both raise_at values, else list;
    a planned activity is never raised (see the module docstring)."""
    pct = math.inf if impact_pct is None else impact_pct
    if planned is not None:
        return Decision(PLANNED, "feedback:planned_activity",
                        f"marked planned activity by {planned['by']}: {planned['why']}")
    for action, limits in (("escalate", policy.escalate_at), ("raise", policy.raise_at)):
        if impact_usd >= limits.impact_usd and pct >= limits.impact_pct:
            return Decision(action, f"capacity.yaml:cost.{action}_at",
                            f"impact ${impact_usd:,.2f} ({_pct(impact_pct)}) crosses both "
                            f"${limits.impact_usd:g} and {limits.impact_pct:g}%")
    return Decision("list", "capacity.yaml:cost.raise_at",
                    f"impact ${impact_usd:,.2f} ({_pct(impact_pct)}) under "
                    f"${policy.raise_at.impact_usd:g} or {policy.raise_at.impact_pct:g}%")


def _pct(value: float | None) -> str:
    return "no expected spend" if value is None else f"{value:+.0f}%"


def anomaly_id(service: str, region: str, usage_type: str, start: datetime) -> str:
    raw = f"cost-{service}-{region}-{usage_type}-{start:%Y%m%dT%H}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)


def hourly(cells: dict[str, float], since: datetime, until: datetime) -> list[float]:
    """Spend per hour from the first hour billed (at or after `since`) to `until`; an hour
    with no charge after the first is $0."""
    hours = sorted(h for h in (datetime.fromisoformat(k) for k in cells) if since <= h < until)
    if not hours:
        return []
    n = int((until - hours[0]) / HOUR)
    return [cells.get((hours[0] + i * HOUR).isoformat(), 0.0) for i in range(n)]


def detect(key: dict[str, str], cells: dict[str, float], window_start: datetime,
           window_end: datetime, policy: CostPolicy,
           feedback: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One series' expected spend over the window and its anomalies (see module docstring)."""
    since = window_start - timedelta(minutes=policy.history)
    values = hourly(cells, since, window_end)
    steps = int((window_end - window_start) / HOUR)
    out: dict[str, Any] = {**key, "hours": steps, "anomalies": []}
    if len(values) <= steps:
        out["note"] = "no spend before the window: nothing to expect from"
        return out
    train, actual = np.asarray(values[:-steps]), np.asarray(values[-steps:])
    if float(actual.sum()) < policy.raise_at.impact_usd:
        # The impact is at most what was spent: nothing here could be raised, so the many
        # small series of a real bill are not forecast at all.
        out["skipped"] = (f"spent ${float(actual.sum()):,.2f} in the window, under raise_at's "
                          f"${policy.raise_at.impact_usd:g}: nothing could be raised")
        return out
    try:
        fc = forecast(train, 60, steps, Kind.LEVEL)
    except (NotEnoughHistory, ArithmeticError, ValueError) as exc:
        out["note"] = f"no expected spend: {exc}"
        return out
    out.update(model=fc.model, rule=fc.rule, history_hours=len(train),
               actual=[round(float(v), 6) for v in actual],
               expected=[round(float(v), 6) for v in fc.mean],
               upper95=[round(float(v), 6) for v in fc.hi95])
    above = (actual > fc.hi95 + 1e-9) & (actual > fc.mean + 1e-9)
    i = 0
    while i < steps:
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < steps and above[j + 1]:
            j += 1
        out["anomalies"].append(_anomaly(key, window_start, i, j, actual, fc.mean, steps,
                                         policy, feedback))
        i = j + 1
    return out


def _anomaly(key: dict[str, str], window_start: datetime, i: int, j: int, actual: np.ndarray,
             expected: np.ndarray, steps: int, policy: CostPolicy,
             feedback: dict[str, dict[str, Any]]) -> dict[str, Any]:
    start, end = window_start + i * HOUR, window_start + (j + 1) * HOUR
    spent, wanted = float(actual[i:j + 1].sum()), float(np.clip(expected[i:j + 1], 0, None).sum())
    impact = spent - wanted
    pct = 100 * impact / wanted if wanted > 0 else None
    ident = anomaly_id(key["service"], key["region"], key["usage_type"], start)
    planned = planned_for(key, start, ident, policy, feedback)
    decision = decide(impact, pct, policy, planned)
    return {"id": ident, **key, "start": start.isoformat(), "end": end.isoformat(),
            "ongoing": j == steps - 1, "hours": j - i + 1,
            "actual_usd": round(spent, 2), "expected_usd": round(wanted, 2),
            "impact_usd": round(impact, 2), "impact_pct": None if pct is None else round(pct, 1),
            "peak_usd_per_hour": round(float(actual[i:j + 1].max()), 4),
            "decision": vars(decision), "feedback": planned}


def planned_for(key: dict[str, str], start: datetime, ident: str, policy: CostPolicy,
                feedback: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The planned-activity mark covering an anomaly of `key` starting at `start`, if any
    (cost_planned: a mark on this anomaly, or one whose dimensions and window cover it)."""
    if ident in feedback and feedback[ident].get("verdict") == PLANNED:
        return feedback[ident]
    for mark in feedback.values():
        if covers(mark, key, start, policy.planned_activity_for):
            return mark
    return None
