"""What is wrong with a policy file, said so an operator can fix it without reading code."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class ProblemLevel(StrEnum):
    ERROR = "error"  # the policies cannot be used until this is fixed
    WARNING = "warning"  # usable, but probably not what the author meant


_MISSING = object()


@dataclass(frozen=True)
class PolicyProblem:
    """One problem: the file, the field path (`rules[2].when.error_ratio_gte`), the bad value."""

    file: str
    field: str
    message: str
    value: Any = _MISSING
    level: ProblemLevel = ProblemLevel.ERROR
    line: int | None = None  # 1-based line in the file, when the YAML tells us
    # From the safety checks (opsloop/policy/safety): valid, but dangerous to run with.
    unsafe: bool = False
    # An unsafe error the operator accepted (--allow-unsafe): still shown, as a warning.
    allowed: bool = False

    @property
    def has_value(self) -> bool:
        return self.value is not _MISSING

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        prefix = "" if self.level is ProblemLevel.ERROR else "warning: "
        if self.unsafe:
            prefix += "unsafe (allowed): " if self.allowed else "unsafe: "
        subject = self.field or "(file)"
        if self.has_value:
            subject += f" = {_short_repr(self.value)}"
        return f"{where}: {prefix}{subject}: {self.message}"


def _short_repr(value: Any, limit: int = 60) -> str:
    # A whole mapping pasted into one line helps nobody; the field path already points at it.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PolicyError(Exception):
    """Raised by `load_policies` when any policy file has an error; carries every problem."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.level is ProblemLevel.ERROR]
        lines = "\n".join(f"  {p}" for p in errors)
        if any(p.unsafe for p in errors):
            lines += (
                "\n  Unsafe settings stop the loop: fix them, or accept them with "
                "OPSLOOP_ALLOW_UNSAFE_POLICIES=1 (`opsloop policy check --allow-unsafe` "
                "lists every one)"
            )
        super().__init__(f"{len(errors)} policy error(s):\n{lines}")


def display_path(path: Path) -> str:
    """Relative to where the operator stands, so messages read `policies/severity.yaml`."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
