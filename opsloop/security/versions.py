"""Version order for matching findings to installed packages, across ecosystems.

Versions are compared token by token (runs of digits numerically, runs of letters as text),
so 2.10.0 > 2.9.1 and 2.0.0-rc1 < 2.0.0: a version that continues with letters where the
other ends is a pre-release, one that continues with digits is later. OSV's "0" is the
start of history.
"""

from __future__ import annotations

import re
from functools import cmp_to_key

from pydantic import BaseModel

_TOKEN = re.compile(r"\d+|[A-Za-z]+")


def _tokens(version: str) -> list[int | str]:
    version = re.sub(r"^[vV](?=\d)", "", version.strip())  # Go's v1.2.3 is 1.2.3
    return [int(t) if t.isdigit() else t.lower() for t in _TOKEN.findall(version)]


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is before, equal to, or after version `b`."""
    ta, tb = _tokens(a), _tokens(b)
    for x, y in zip(ta, tb, strict=False):
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, str) and isinstance(y, str):
            return -1 if x < y else 1
        return -1 if isinstance(x, str) else 1  # a letter where the other has a number: pre
    if len(ta) == len(tb):
        return 0
    longer, sign = (ta, 1) if len(ta) > len(tb) else (tb, -1)
    rest = longer[min(len(ta), len(tb)):]
    if all(t == 0 for t in rest):
        return 0  # 1.0 and 1.0.0 are one version
    return -sign if isinstance(rest[0], str) else sign


version_key = cmp_to_key(compare)


class VersionRange(BaseModel):
    """OSV range events for one span: introduced (inclusive), then fixed (exclusive) or
    last_affected (inclusive); neither means every later version is affected."""

    introduced: str = "0"
    fixed: str | None = None
    last_affected: str | None = None

    def contains(self, version: str) -> bool:
        if self.introduced != "0" and compare(version, self.introduced) < 0:
            return False
        if self.fixed is not None and compare(version, self.fixed) >= 0:
            return False
        return self.last_affected is None or compare(version, self.last_affected) <= 0


def ranges_from_events(events: list[dict[str, str]]) -> list[VersionRange]:
    """OSV `ranges[].events` (introduced/fixed/last_affected, in order) as spans."""
    spans: list[VersionRange] = []
    current: VersionRange | None = None
    for event in events:
        if "introduced" in event:
            current = VersionRange(introduced=str(event["introduced"]))
            spans.append(current)
        elif current is not None and "fixed" in event:
            current.fixed = str(event["fixed"])
            current = None
        elif current is not None and "last_affected" in event:
            current.last_affected = str(event["last_affected"])
            current = None
    return spans
