"""The opsloop runbook format: front matter a machine can follow, validated on load.

A runbook written for opsloop carries hypotheses, checks and remediation in YAML front matter
(runbooks/README.md). Runbooks written elsewhere are plain markdown; `opsloop.runbooks.load`
reads both kinds into this one `Runbook` record. Tool names, their arguments and specialist
names are checked against the catalog (`opsloop.models.catalog`), not against the code that
implements them.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from opsloop.models import ParamValue
from opsloop.models.catalog import TOOLS, SpecialistName
from opsloop.runbooks.checks import ExpectError, check_expect, template_vars
from opsloop.runbooks.markdown import split_sections


class CheckSpec(BaseModel, extra="forbid"):
    """One diagnostic step: call a tool, compare a field, maybe bind values for later."""

    id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    expect: str | None = None  # no expectation: the check only binds (holds when the tool answers)
    bind: dict[str, str] = Field(default_factory=dict)  # variable -> path in the tool's data
    weight: float = Field(default=1.0, ge=0.0)
    required: bool = False
    refutes: bool = False  # when it holds, it counts against the hypothesis
    description: str = ""

    @field_validator("expect")
    @classmethod
    def _expect_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_expect(value)
            except ExpectError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _tool_exists(self) -> CheckSpec:
        params = TOOLS.get(self.tool)
        if params is None:
            raise ValueError(f"unknown tool {self.tool!r}; tools are {', '.join(sorted(TOOLS))}")
        unknown = sorted(set(self.args) - set(params))
        if unknown:
            raise ValueError(f"{self.tool} has no argument(s) {', '.join(unknown)}; "
                             f"it takes {', '.join(params)}")
        if self.required and self.refutes:
            raise ValueError("a check cannot be both required and refutes")
        return self


class ActionTemplate(BaseModel, extra="forbid"):
    """A remediation action with `{var}` placeholders filled from bound values."""

    action: str
    service: str = "{service}"
    params: dict[str, ParamValue] = Field(default_factory=dict)
    reason: str = ""


Suspects = Literal["alerting", "path"]


class HypothesisSpec(BaseModel, extra="forbid"):
    id: str
    category: str
    cause: str
    service: str = "{service}"  # whom the hypothesis blames, e.g. "{dependency}"
    # Which services the hypothesis is tested on: those that alert, or also the services on
    # their dependency paths that did not (a callee serving an expired certificate, a DNS
    # provider, a network: faults that show only in their callers' logs).
    suspects: Suspects = "alerting"
    checks: list[CheckSpec] = Field(min_length=1)
    remediation: list[ActionTemplate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _variables_are_bound_before_use(self) -> HypothesisSpec:
        known = {"service"}
        seen: set[str] = set()
        for i, check in enumerate(self.checks):
            if check.id in seen:
                raise ValueError(f"checks[{i}]: duplicate check id {check.id!r}")
            seen.add(check.id)
            used = set().union(*(template_vars(v) for v in check.args.values()),
                               template_vars(check.expect))
            if used - known:
                raise ValueError(f"checks[{i}] ({check.id}) uses {sorted(used - known)} "
                                 "before any earlier check binds it")
            known |= set(check.bind)
        for i, act in enumerate(self.remediation):
            used = template_vars(act.service).union(
                *(template_vars(v) for v in act.params.values()))
            if used - known:
                raise ValueError(f"remediation[{i}] ({act.action}) uses {sorted(used - known)}, "
                                 "which no check binds")
        return self


class Runbook(BaseModel, extra="forbid"):
    """One runbook. Those written for opsloop have hypotheses; others are for people only."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    specialist: SpecialistName | None = None  # none: found by search, followed by no specialist
    alerts: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=lambda: ["*"])
    symptoms: list[str] = Field(default_factory=list)
    hypotheses: list[HypothesisSpec] = Field(default_factory=list)
    file: str = ""
    body: str = ""

    @model_validator(mode="after")
    def _followable_runbooks_name_their_specialist(self) -> Runbook:
        if self.hypotheses and self.specialist is None:
            raise ValueError("a runbook with hypotheses must name the specialist that follows it")
        return self

    def applies_to(self, service: str) -> bool:
        return any(fnmatch.fnmatchcase(service, pat) for pat in self.services)

    def sections(self) -> dict[str, str]:
        """Heading -> text, in order, at the heading level the runbook uses for sections."""
        return dict(split_sections(self.body).sections)


class RunbookProblem(BaseModel):
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class RunbookError(ValueError):
    def __init__(self, problems: list[RunbookProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def validate_runbook(file: str, data: dict[str, Any]) -> Runbook:
    """The Runbook for parsed fields; RunbookError names the file and the field."""
    try:
        return Runbook.model_validate(data)
    except ValidationError as exc:
        problems = [RunbookProblem(file=file, field=".".join(str(p) for p in e["loc"]) or "-",
                                   message=e["msg"].removeprefix("Value error, "))
                    for e in exc.errors()]
        raise RunbookError(problems) from exc
