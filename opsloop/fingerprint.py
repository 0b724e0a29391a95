"""Alertmanager's label fingerprint: FNV-1a 64 over sorted label pairs, 0xff-separated."""

from __future__ import annotations

from collections.abc import Mapping

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF


def _add(h: int, data: bytes) -> int:
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & _MASK
    return h


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """The 16-hex-digit fingerprint Alertmanager shows for an alert with these labels."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        h = _add(h, name.encode())
        h = _add(h, bytes([_SEPARATOR]))
        h = _add(h, labels[name].encode())
        h = _add(h, bytes([_SEPARATOR]))
    return f"{h:016x}"
