"""flagd flag definitions (https://flagd.dev/reference/flag-definitions/): the document
opsloop reads and writes, and how a progressive rollout is spelled in it.

A rollout flag is a flag with an `on` and an `off` variant, `defaultVariant: off`, and the
targeting rule flagd evaluates for percentage rollouts:

    {"fractional": [["on", P], ["off", 100 - P]]}

flagd buckets each evaluation by a hash of the flag key and the targeting key, so a user
stays in their cohort as P grows. Weights are integers (flagd rejects decimal weights), so
rollout percents are whole numbers. The kill switch is `state: DISABLED`: flagd then serves
no variant and every client falls back to its code default (the old path).

Per-flag `metadata` (flat: strings, numbers, booleans, as flagd allows) carries what opsloop
needs beside flagd's own fields: `service`, `owner`, `kind` and `updatedAt`.

`evaluate` serves a flag the way flagd's in-process evaluator does (openfeature-flagd-core
2.x, what the OpenFeature flagd provider runs in file mode): `fractional` hashes the
canonical CBOR encoding of `[flagKey, targetingKey]` with murmur3 (x86, 32 bit, seed 0) and
picks the bucket `hash * totalWeight >> 32`. The simulator decides each request's cohort
with it; a test checks it against the provider key by key.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from opsloop.models import FlagState

ON, OFF = "on", "off"
SCHEMA_FILE = "flagd-flags.opsloop.json"
Document = dict[str, Any]
Flag = dict[str, Any]


class FlagFileError(ValueError):
    """A flag document that does not validate; `problems` say where and what."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        super().__init__(f"{where}: not a valid flagd flag file:\n  " + "\n  ".join(problems))


@cache
def schema() -> dict[str, Any]:
    """The JSON schema flag files are checked against (see schema/ for what it is)."""
    text = resources.files("opsloop.rollouts").joinpath("schema", SCHEMA_FILE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def problems(document: Any) -> list[str]:
    """Every way `document` breaks the schema, each as `path: message`; empty when valid."""
    validator = Draft202012Validator(schema())
    found = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        found.append(f"{path}: {error.message}")
    return found


def check(document: Any, where: str) -> Document:
    """`document` when it validates; FlagFileError naming each problem otherwise."""
    found = problems(document)
    if found:
        raise FlagFileError(where, found)
    valid: Document = document
    return valid


def _whole(percent: float) -> int:
    if not 0 <= percent <= 100 or percent != int(percent):
        raise ValueError(f"rollout percent must be a whole number from 0 to 100, got {percent!r}"
                         " (flagd's fractional weights are integers)")
    return int(percent)


def rollout_flag(percent: float, *, service: str, owner: str = "", kind: str = "release",
                 updated_at: datetime | None = None) -> Flag:
    """A new on/off flag serving `on` to `percent`% of targeting keys."""
    meta: dict[str, Any] = {"service": service, "kind": kind}
    if owner:
        meta["owner"] = owner
    flag: Flag = {"state": "ENABLED", "variants": {ON: True, OFF: False},
                  "defaultVariant": OFF, "metadata": meta}
    return with_percent(flag, percent, updated_at)


def with_percent(flag: Flag, percent: float, updated_at: datetime | None = None) -> Flag:
    """`flag` enabled and serving `on` to `percent`% (a copy; the original is untouched)."""
    on = _whole(percent)
    out = copy.deepcopy(flag)
    out["state"] = "ENABLED"
    out["targeting"] = {"fractional": [[ON, on], [OFF, 100 - on]]}
    return _stamped(out, updated_at)


def disabled(flag: Flag, updated_at: datetime | None = None) -> Flag:
    """The kill switch: `state: DISABLED`, targeting kept so a re-enable resumes the cohort."""
    out = copy.deepcopy(flag)
    out["state"] = "DISABLED"
    return _stamped(out, updated_at)


def _stamped(flag: Flag, updated_at: datetime | None) -> Flag:
    if updated_at is not None:
        flag.setdefault("metadata", {})["updatedAt"] = updated_at.isoformat()
    return flag


def rollout_percent(flag: Flag) -> float:
    """The share of targeting keys served `on` (0 when disabled), as flagd would serve it."""
    if flag.get("state") != "ENABLED":
        return 0.0
    fractional = (flag.get("targeting") or {}).get("fractional")
    if not fractional:
        return 100.0 if flag.get("defaultVariant") == ON else 0.0
    buckets = [b for b in fractional if isinstance(b, list)]
    weights = {str(b[0]): (b[1] if len(b) > 1 else 1) for b in buckets}
    total = sum(weights.values())
    return 100.0 * weights.get(ON, 0) / total if total else 0.0


def flag_state(key: str, flag: Flag, default_time: datetime) -> FlagState:
    """The loop's view of one flagd flag (what `ChangeFeed.flags` returns)."""
    meta = flag.get("metadata") or {}
    stamp = meta.get("updatedAt")
    return FlagState(key=key, service=str(meta.get("service", "")),
                     enabled=flag.get("state") == "ENABLED",
                     rollout_percent=rollout_percent(flag),
                     updated_at=datetime.fromisoformat(stamp) if stamp else default_time,
                     owner=str(meta.get("owner", "")))


def _murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, unsigned (what flagd's `fractional` hashes with)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def _cbor_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    n = len(raw)
    if n < 24:
        head = bytes([0x60 | n])
    elif n < 0x100:
        head = bytes([0x78, n])
    elif n < 0x10000:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x7A]) + n.to_bytes(4, "big")
    return head + raw


def bucket_hash(flag_key: str, targeting_key: str) -> int:
    """flagd's hash of one evaluation: murmur3 of the canonical CBOR `[flagKey, targetingKey]`."""
    return _murmur3_32(b"\x82" + _cbor_text(flag_key) + _cbor_text(targeting_key))


def fractional_buckets(flag: Flag) -> list[tuple[str, int]] | None:
    """The flag's `fractional` buckets as (variant, weight); None when it has none."""
    fractional = (flag.get("targeting") or {}).get("fractional")
    if not fractional:
        return None
    # A leading non-list is a custom bucketing expression; opsloop writes none.
    return [(str(b[0]), max(int(b[1]), 0) if len(b) > 1 else 1)
            for b in fractional if isinstance(b, list)]


def pick(hash_value: int, buckets: list[tuple[str, int]]) -> str | None:
    """The variant a hash falls in, as flagd's `fractional` picks it."""
    total = sum(w for _, w in buckets)
    if total <= 0:
        return None
    bucket = (hash_value * total) >> 32
    end = 0
    for variant, weight in buckets:
        end += weight
        if bucket < end:
            return variant
    return None


def evaluate(flag_key: str, flag: Flag, targeting_key: str) -> str | None:
    """The variant flagd serves `targeting_key`; None when the flag is disabled (the client
    then falls back to its code default)."""
    if flag.get("state") != "ENABLED":
        return None
    buckets = fractional_buckets(flag)
    if buckets is None:
        return str(flag.get("defaultVariant") or "") or None
    variant = pick(bucket_hash(flag_key, targeting_key), buckets)
    return variant if variant is not None else str(flag.get("defaultVariant") or "") or None


def document_from_states(states: list[FlagState]) -> Document:
    """A flagd document for flags the loop knows as `FlagState`s (e.g. the simulator's)."""
    flags: dict[str, Flag] = {}
    for s in states:
        flag = rollout_flag(round(s.rollout_percent), service=s.service, owner=s.owner,
                            updated_at=s.updated_at)
        flags[s.key] = flag if s.enabled else disabled(flag)
    return {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags}
