"""The simulator's flags as flagd sees them: the flag-definition document it serves, the
cohort flagd would serve each request, the per-variant traffic an experiment compares, and
following a team's flagd file.

Requests are spread over a fixed population of targeting keys (`user-0` ... `user-9999`);
a flag's `on` cohort is the share of that population flagd's `fractional` buckets into `on`
(opsloop.rollouts.flagd.evaluate), not the nominal percent, so what the simulated service
suffers is what flagd would serve.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from opsloop.rollouts import flagd
from opsloop.rollouts.flagd import OFF, ON, Document, Flag, FlagFileError
from opsloop.rollouts.source import FileFlagSource
from opsloop.simulator import events
from opsloop.simulator.reading import Reading
from opsloop.simulator.state import FlagRecord, SimState, tick_time

POPULATION = 10_000  # synthetic targeting keys a service's requests come from
FILE_AUTHOR = "flag file"  # who changed a flag the simulator follows from a flagd file


def flagd_flag(record: FlagRecord) -> Flag:
    """One simulated flag in flagd's format (on/off, fractional percent, metadata)."""
    flag = flagd.rollout_flag(round(record.rollout_percent), service=record.service,
                              owner=record.owner, kind=record.kind,
                              updated_at=tick_time(record.updated_tick))
    return flag if record.enabled else flagd.disabled(flag)


def document(state: SimState) -> Document:
    """The simulator's flags as one flagd flag-definition document (what sim-serve serves)."""
    doc: Document = {"$schema": "https://flagd.dev/schema/v0/flags.json",
                     "flags": {f.key: flagd_flag(f) for f in state.flags}}
    return flagd.check(doc, "simulated flags")


@lru_cache(maxsize=512)
def _hashes(key: str) -> tuple[int, ...]:
    return tuple(flagd.bucket_hash(key, f"user-{i}") for i in range(POPULATION))


@lru_cache(maxsize=2048)
def _on_share(key: str, percent: int) -> float:
    buckets = [(ON, percent), (OFF, 100 - percent)]
    return sum(flagd.pick(h, buckets) == ON for h in _hashes(key)) / POPULATION


def on_share(record: FlagRecord) -> float:
    """The share of the population flagd serves `on` (0 when the flag is disabled)."""
    if not record.enabled:
        return 0.0
    percent = round(record.rollout_percent)
    if percent <= 0 or percent >= 100:
        return float(percent >= 100)
    return _on_share(record.key, percent)


def splits_traffic(record: FlagRecord) -> bool:
    """A flag whose variants both see traffic now: the ones worth counting per variant."""
    return 0.0 < on_share(record) < 1.0


def count_variants(state: SimState, record: FlagRecord, reading: Reading) -> None:
    """Record one minute of the flag's traffic by variant: requests split by cohort, errors
    at the service's ratio (the `on` cohort also fails at its variant_error_ratio), and
    conversions of the successful requests at each variant's rate.

    Draws come from their own generator (seed, tick, service, flag), so counting never moves
    the physics' noise and every run of a seed counts the same."""
    share = on_share(record)
    cause = reading.causes.get(f"flag:{record.key}", 0.0)
    # The service's error without this flag's cohort, and the cohort's own failure ratio.
    rest = 1.0 - (1.0 - reading.error) / max(1.0 - cause, 1e-9)
    variant_error = cause / share if share else 0.0
    seed = zlib.crc32(f"{state.seed}:{state.tick}:{record.service}/{record.key}".encode())
    rng = np.random.default_rng(seed)
    total = int(rng.poisson(max(reading.rps, 0.0) * 60))
    on = int(rng.binomial(total, share))
    counts: dict[str, tuple[int, int, int]] = {}
    for variant, n, error in ((ON, on, 1.0 - (1.0 - rest) * (1.0 - variant_error)),
                              (OFF, total - on, rest)):
        errors = int(rng.binomial(n, min(max(error, 0.0), 1.0)))
        conversions = int(rng.binomial(n - errors, min(max(record.conversion(variant), 0.0),
                                                       1.0)))
        counts[variant] = (n, errors, conversions)
    state.count_variants(record.service, record.key, counts)


def variant_counts(state: SimState, service: str, key: str,
                   minutes: int) -> dict[str, dict[str, int]]:
    """`{variant: {requests, errors, conversions}}` over the last `minutes`; KeyError when
    the flag is unknown or nothing was counted in that window."""
    if state.flag(service, key) is None:
        known = ", ".join(f.key for f in state.flags if f.service == service) or "none"
        raise KeyError(f"no flag {key!r} on service {service!r} (its flags: {known})")
    since = state.tick - minutes
    picked = [c for tick, c in state.variant_counts.get(f"{service}/{key}", []) if tick > since]
    if not picked:
        raise KeyError(f"no per-variant traffic recorded for flag {key!r} on {service!r} in "
                       f"the last {minutes} minutes (counted only while it splits traffic)")
    out: dict[str, dict[str, int]] = {}
    for minute in picked:
        for variant, (n, errors, conversions) in minute.items():
            sums = out.setdefault(variant, {"requests": 0, "errors": 0, "conversions": 0})
            sums["requests"] += n
            sums["errors"] += errors
            sums["conversions"] += conversions
    return out


def follow(state: SimState, path: Path) -> list[str]:
    """Make the simulated flags match a team's flagd file: the file decides each flag's state
    and percent (a flag for a service the simulator has not got is ignored). An unreadable or
    invalid file changes nothing, as flagd keeps serving its last good flags; the problem is
    returned, for whoever runs the simulator to say."""
    source = FileFlagSource(path, clock=state.now)
    try:
        flags = source.read()["flags"]
    except FlagFileError as exc:
        return exc.problems
    for key, flag in sorted(flags.items()):
        meta = flag.get("metadata") or {}
        service = str(meta.get("service", ""))
        if service not in state.services:
            continue
        enabled = flag.get("state") == "ENABLED"
        percent = flagd.rollout_percent(flag)
        record = state.flag(service, key)
        if record is None:
            state.flags.append(FlagRecord(key=key, service=service, enabled=enabled,
                                          rollout_percent=percent, updated_tick=state.tick,
                                          owner=str(meta.get("owner", "")),
                                          kind=str(meta.get("kind", "release"))))
        elif (record.enabled, record.rollout_percent) != (enabled, percent):
            events.set_flag(state, service, key, enabled, percent, FILE_AUTHOR)
    return []
