"""CVSS v3.0/v3.1 base scores from a vector string, by the FIRST specification's formula.

OSV records carry only the vector, so the score is computed here rather than trusted from
whichever scanner happened to report it. Roundup is the v3.1 definition (integer arithmetic,
so 4.000001 never becomes 4.1 through floating point noise).
"""

from __future__ import annotations

import math

_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_PR_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PR_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
_BASE = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


class CvssError(ValueError):
    """A vector that is not a CVSS v3 base vector; the message names the part that is wrong."""


def roundup(value: float) -> float:
    """CVSS v3.1 Roundup: the smallest one-decimal number not below `value`."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0


def _metrics(vector: str) -> dict[str, str]:
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        raise CvssError(f"{vector!r} does not start with CVSS:3.0 or CVSS:3.1")
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep:
            raise CvssError(f"{vector!r}: {part!r} is not METRIC:VALUE")
        metrics[key] = value
    if missing := [m for m in _BASE if m not in metrics]:
        raise CvssError(f"{vector!r} lacks base metric(s) {', '.join(missing)}")
    return metrics


def base_score(vector: str) -> float:
    """The base score (0.0-10.0) of a CVSS v3 vector such as `CVSS:3.1/AV:N/AC:L/...`."""
    m = _metrics(vector)
    changed = m["S"] == "C"
    if m["S"] not in ("U", "C"):
        raise CvssError(f"{vector!r}: S:{m['S']} is not U or C")
    try:
        iss = 1 - (1 - _CIA[m["C"]]) * (1 - _CIA[m["I"]]) * (1 - _CIA[m["A"]])
        pr = (_PR_CHANGED if changed else _PR_UNCHANGED)[m["PR"]]
        exploitability = 8.22 * _AV[m["AV"]] * _AC[m["AC"]] * pr * _UI[m["UI"]]
    except KeyError as exc:
        raise CvssError(f"{vector!r}: value {exc.args[0]!r} is not defined by CVSS v3") from None
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    if impact <= 0:
        return 0.0
    if changed:
        return roundup(min(1.08 * (impact + exploitability), 10.0))
    return roundup(min(impact + exploitability, 10.0))
