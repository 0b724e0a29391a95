"""Reading one JSON record at a time: a field that is missing or of the wrong type becomes
an IntakeProblem naming file, record and field, and the other records are still read."""

from __future__ import annotations

from typing import Any

from opsloop.security.cvss import CvssError, base_score
from opsloop.security.finding import IntakeProblem


class Skip(Exception):  # control flow inside one record; never escapes a reader
    """The current record cannot be used; the problem is already recorded."""


class Record:
    """One record of a document, e.g. Results[0].Vulnerabilities[2] of a Trivy file."""

    def __init__(self, file: str, where: str, data: Any, problems: list[IntakeProblem]):
        self.file, self.where, self.data, self.problems = file, where, data, problems
        if not isinstance(data, dict):
            self.fail("", repr(data)[:60], "is not a JSON object")

    def fail(self, field: str, value: str, message: str) -> None:
        self.problems.append(IntakeProblem(
            file=self.file, where=self.where, field=field or "(record)", value=value,
            message=message))
        raise Skip

    def text(self, field: str, required: bool = True) -> str:
        value = self.data.get(field)
        if value is None or value == "":
            if required:
                self.fail(field, "", "missing; every record needs it")
            return ""
        if not isinstance(value, str):
            self.fail(field, repr(value)[:60], "must be a string")
        return str(value)

    def items(self, field: str, required: bool = False) -> list[Any]:
        value = self.data.get(field)
        if value is None:
            if required:
                self.fail(field, "", "missing; expected a list")
            return []
        if not isinstance(value, list):
            self.fail(field, repr(value)[:60], "must be a list")
        return list(value)

    def obj(self, field: str) -> dict[str, Any]:
        value = self.data.get(field)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(field, repr(value)[:60], "must be an object")
        return dict(value)

    def number(self, value: Any, field: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, repr(value)[:60], "must be a number")
        return float(value)

    def score(self, vector: str, field: str) -> float | None:
        """The base score of a CVSS v3 vector; None for other versions (v2, v4)."""
        if not vector.startswith("CVSS:3."):
            return None
        try:
            return base_score(vector)
        except CvssError as exc:
            self.fail(field, vector, str(exc))
            return None


def purl_base(purl: str) -> str:
    """A package URL without its version, qualifiers and subpath: what identifies the
    package rather than one build of it."""
    base = purl.split("#", 1)[0].split("?", 1)[0]
    head, _, tail = base.rpartition("/")
    name = tail.split("@", 1)[0] if head else base.split("@", 1)[0]
    return f"{head}/{name}" if head else name
