"""Alertmanager's label fingerprint: FNV-1a 64 over sorted label pairs, 0xff-separated.

A storm re-sends the same label sets every group_interval, so fingerprints are remembered
per label set (keyed by its sorted pairs); a batch of new ones is hashed with numpy, one
byte column at a time across every label set (FNV-1a is sequential within one label set,
not across them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = b"\xff"
# The separator in the text form of a label set: "ÿ" encodes to b"\xc3\xbf" in UTF-8, which
# only ever stands for "ÿ", so the bytes hashed are the text's with that pair made one 0xff.
_TEXT_SEPARATOR = "\xff"
_ENCODED_SEPARATOR = _TEXT_SEPARATOR.encode()

# Below this many unseen label sets, the per-column numpy calls cost more than they save.
_VECTOR_FROM = 32
_CACHE_LIMIT = 262_144  # label sets remembered; the cache starts over beyond it
_cache: dict[str, str] = {}


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


def _text(labels: Mapping[str, str]) -> str:
    """The sorted pairs as one string, "ÿ" after each name and each value: the cache key."""
    return "".join([f"{name}\xff{labels[name]}\xff" for name in sorted(labels)])


def label_fingerprints(label_sets: Sequence[Mapping[str, str]]) -> list[str]:
    """`label_fingerprint` of each label set, bit for bit; seen label sets are not rehashed."""
    texts = [_text(labels) for labels in label_sets]
    get = _cache.get
    out = [get(text) for text in texts]
    missing = [i for i, fp in enumerate(out) if fp is None]
    # A name or value holding "ÿ" itself would read as a separator, and its text could be
    # another label set's: such a set is hashed the long way (which raises for text that
    # cannot be encoded, as label_fingerprint does) and never remembered.
    odd = {i for i, text in enumerate(texts)
           if text.count(_TEXT_SEPARATOR) != 2 * len(label_sets[i])}
    if odd:
        for i in odd:
            out[i] = label_fingerprint(label_sets[i])
        missing = [i for i in missing if i not in odd]
    if not missing:
        return out  # type: ignore[return-value]  # every entry was found
    encoded = [texts[i].encode().replace(_ENCODED_SEPARATOR, _SEPARATOR) for i in missing]
    if len(missing) < _VECTOR_FROM:
        computed = [f"{_fnv1a(data):016x}" for data in encoded]
    else:
        computed = _fnv1a_many(encoded)
    if len(_cache) + len(missing) > _CACHE_LIMIT:
        _cache.clear()
    for i, fp in zip(missing, computed, strict=True):
        out[i] = fp
        _cache[texts[i]] = fp
    return out  # type: ignore[return-value]  # every gap was filled


def _fnv1a_many(encoded: list[bytes]) -> list[str]:
    """FNV-1a 64 of many byte strings at once (uint64 arithmetic wraps as the mask does)."""
    import numpy as np  # only a batch needs it; imported here to keep module import light

    count = len(encoded)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=count)
    order = np.argsort(-lengths, kind="stable")  # longest first: live rows are a prefix
    ordered = order.tolist()
    # The strings end to end (longest first); row i's byte `column` is at starts[i] + column.
    data = np.frombuffer(b"".join([encoded[i] for i in ordered]),
                         dtype=np.uint8).astype(np.uint64)
    sorted_lengths = lengths[order]
    starts = np.zeros(count, dtype=np.int64)
    np.cumsum(sorted_lengths[:-1], out=starts[1:])
    width = int(sorted_lengths[0]) if count else 0
    live = np.searchsorted(-sorted_lengths, -np.arange(width), side="left").tolist()
    h = np.full(count, _FNV_OFFSET, dtype=np.uint64)
    prime = np.uint64(_FNV_PRIME)
    for column in range(width):
        n = live[column]  # rows longer than `column`
        if n == count:
            h ^= data[starts + column]
            h *= prime
        else:
            h[:n] ^= data[starts[:n] + column]
            h[:n] *= prime
    hashed = [""] * count
    for index, value in zip(ordered, h.tolist(), strict=True):
        hashed[index] = f"{value:016x}"
    return hashed
