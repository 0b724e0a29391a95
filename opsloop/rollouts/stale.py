"""Stale flags: a flag that has outlived what its kind of flag is for.

Lifetimes per kind are policy data (rollouts.yaml `stale`; Unleash's defaults: release and
experiment 40 days, operational 7, kill switch and permission never). A flag is stale when
it has gone unchanged past its kind's lifetime while serving one variant to everyone
(enabled at 100%, or disabled / at 0%: either way the code has one live path), or when it
has gone unchanged longer than `unchanged_for`, whatever it serves. Unchanged is measured
from the flag's last change: flag files and the simulator keep no creation date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsloop.models import FlagState


@dataclass(frozen=True)
class Staleness:
    key: str
    service: str
    kind: str
    rule: str  # which limit made it stale
    reason: str
    evidence: tuple[str, ...]


def one_variant(flag: FlagState) -> bool:
    return not flag.enabled or flag.rollout_percent <= 0 or flag.rollout_percent >= 100


def stale(flag: FlagState, kind: str, lifetime_minutes: int | None,
          unchanged_for_minutes: int | None, now: datetime) -> Staleness | None:
    """Why `flag` is stale, or None (see the module docstring)."""
    age = (now - flag.updated_at).total_seconds() / 60
    serving = ("DISABLED" if not flag.enabled else f"{flag.rollout_percent:g}% on")
    evidence = (f"last changed {flag.updated_at:%Y-%m-%d %H:%M} UTC",
                f"kind {kind}, lifetime "
                f"{'never' if lifetime_minutes is None else f'{lifetime_minutes // 1440}d'}",
                f"serves {serving}", f"owner {flag.owner or 'not recorded'}")
    if lifetime_minutes is not None and age > lifetime_minutes and one_variant(flag):
        return Staleness(flag.key, flag.service, kind, f"lifetimes.{kind}",
                         f"{flag.key} serves one variant ({serving}) and has not changed for "
                         f"longer than a {kind} flag's {lifetime_minutes // 1440} days",
                         evidence)
    if unchanged_for_minutes is not None and age > unchanged_for_minutes and (
            lifetime_minutes is not None):
        return Staleness(flag.key, flag.service, kind, "unchanged_for",
                         f"{flag.key} has not changed for more than "
                         f"{unchanged_for_minutes // 1440} days", evidence)
    return None
