"""Alertmanager's label fingerprint: FNV-1a 64 over sorted label pairs, 0xff-separated.

A storm re-sends the same label sets every group_interval, so fingerprints are remembered
per label set; a batch of new ones is hashed with numpy, one byte column at a time across
every label set (FNV-1a is sequential within one label set, not across them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = b"\xff"

# Below this many unseen label sets, the per-column numpy calls cost more than they save.
_VECTOR_FROM = 32
_CACHE_LIMIT = 262_144  # label sets remembered; the cache starts over beyond it
_cache: dict[tuple[tuple[str, str], ...], str] = {}


def _encoded(labels: Mapping[str, str]) -> bytes:
    return b"".join(name.encode() + _SEPARATOR + labels[name].encode() + _SEPARATOR
                    for name in sorted(labels))


def _fnv1a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """The 16-hex-digit fingerprint Alertmanager shows for an alert with these labels."""
    return f"{_fnv1a(_encoded(labels)):016x}"


def label_fingerprints(label_sets: Sequence[Mapping[str, str]]) -> list[str]:
    """`label_fingerprint` of each label set, bit for bit; seen label sets are not rehashed."""
    keys = [tuple(labels.items()) for labels in label_sets]
    out = [_cache.get(key) for key in keys]
    missing = [i for i, fp in enumerate(out) if fp is None]
    if not missing:
        return out  # type: ignore[return-value]  # every entry was found
    if len(missing) < _VECTOR_FROM:
        computed = [label_fingerprint(label_sets[i]) for i in missing]
    else:
        computed = _fnv1a_many([_encoded(label_sets[i]) for i in missing])
    if len(_cache) + len(missing) > _CACHE_LIMIT:
        _cache.clear()
    for i, fp in zip(missing, computed, strict=True):
        out[i] = fp
        _cache[keys[i]] = fp
    return out  # type: ignore[return-value]  # every gap was filled


def _fnv1a_many(encoded: list[bytes]) -> list[str]:
    """FNV-1a 64 of many byte strings at once (uint64 arithmetic wraps as the mask does)."""
    import numpy as np  # only a batch needs it; imported here to keep module import light

    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    order = np.argsort(-lengths, kind="stable")  # longest first: live rows are a prefix
    width = int(lengths.max())
    rows = b"".join(encoded[i].ljust(width, b"\0") for i in order.tolist())
    data = np.frombuffer(rows, dtype=np.uint8).reshape(len(encoded), width).astype(np.uint64)
    live = np.searchsorted(-lengths[order], -np.arange(width), side="left")  # len > column
    h = np.full(len(encoded), _FNV_OFFSET, dtype=np.uint64)
    prime = np.uint64(_FNV_PRIME)
    for column in range(width):
        n = int(live[column])
        h[:n] = (h[:n] ^ data[:n, column]) * prime
    hashed = [""] * len(encoded)
    for index, value in zip(order.tolist(), h.tolist(), strict=True):
        hashed[index] = f"{value:016x}"
    return hashed
