"""Eval cases and suites as data: `evals/cases/**/case.yaml` and `evals/suites/*.yaml`.

A case is a folder. `case.yaml` says what production does (a simulator variant) or where
the recording is (the folder's other files), and the expected answer. The format is
written up in evals/README.md; nothing here knows any particular case.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsloop.agents.specialists import SPECIALISTS
from opsloop.models import ParamValue, RemediationAction, Severity
from opsloop.scheduled import registry
from opsloop.simulator.variants import Variant
from opsloop.tools.recorded_series import parse_time

# The model name that means "no model": the deterministic offline reasoner.
OFFLINE = "offline"

CASE_FILE = "case.yaml"


class CaseError(ValueError):
    """A case or suite file that cannot be used; the message names the file and field."""


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class ActionSpec(BaseModel):
    """An action pattern: type, optionally the service and parameters it must carry."""

    model_config = ConfigDict(extra="forbid")

    type: str
    service: str | None = None
    params: dict[str, ParamValue] = Field(default_factory=dict)

    def matches(self, action: RemediationAction) -> bool:
        return (
            action.type == self.type
            and (self.service is None or action.service == self.service)
            and all(str(action.params.get(k)) == str(v) for k, v in self.params.items())
        )

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        inner = ", ".join(p for p in (self.service or "*", params) if p)
        return f"{self.type}({inner})"


class RootCause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str
    keywords: list[str] = Field(default_factory=list)  # must appear in the cause or evidence


class ExpectedIncident(BaseModel):
    """The answer key for one incident the case should open."""

    model_config = ConfigDict(extra="forbid")

    service: str  # where the fault is; also how an opened incident is matched to this answer
    severity: list[Severity]
    specialists: list[str]  # acceptable handlers: the winning diagnosis must come from one
    root_cause: RootCause
    remediation: list[ActionSpec] = Field(default_factory=list)  # [] = no automated fix is right
    forbidden: list[ActionSpec] = Field(default_factory=list)  # must never be executed
    approval: bool  # must the loop ask a human before acting?
    verification: Literal["passed", "failed", "none", "any"] = "any"
    rolled_back: bool | None = None
    postmortem: list[str] = Field(default_factory=list)  # facts the draft must state

    @field_validator("severity", "specialists", "remediation", "forbidden", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("specialists")
    @classmethod
    def _known_specialists(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SPECIALISTS]
        if unknown or not value:
            raise ValueError(f"unknown specialist(s) {unknown or '[]'}; "
                             f"specialists: {', '.join(SPECIALISTS)}")
        return value


class AlertDelivery(BaseModel):
    """One Alertmanager webhook payload and when it reached opsloop."""

    model_config = ConfigDict(extra="forbid")

    file: str
    received_at: datetime | None = None  # default: the latest startsAt/endsAt in the payload

    @field_validator("received_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return None if value is None else parse_time(value)


class RecordingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: datetime  # when opsloop looked: the clock starts here
    onset: datetime | None = None  # when the fault began, if the incident review knows
    alerts: list[AlertDelivery] = Field(default_factory=list)  # default: alerts/*.json by name

    @field_validator("now", "onset", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return None if value is None else parse_time(value)


class Range(BaseModel):
    """A number's acceptable interval (either bound may be left open)."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return ((self.min is None or value >= self.min)
                and (self.max is None or value <= self.max))

    def describe(self) -> str:
        return f"[{'' if self.min is None else f'{self.min:g}'}, " \
               f"{'' if self.max is None else f'{self.max:g}'}]"


class FindingSpec(BaseModel):
    """A finding pattern: kind and subject are globs; `data` values are equal or in a range."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "*"
    subject: str = "*"
    level: list[Literal["info", "warning", "critical"]] = Field(default_factory=list)
    data: dict[str, Range | ParamValue] = Field(default_factory=dict)
    within_minutes: int | None = None  # seen by a run at most this long after the first run

    @field_validator("level", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _listify(value)

    def matches(self, finding: dict[str, Any]) -> bool:
        data = finding.get("data") or {}
        return (
            fnmatch.fnmatch(str(finding.get("kind", "")), self.kind)
            and fnmatch.fnmatch(str(finding.get("subject", "")), self.subject)
            and (not self.level or finding.get("level") in self.level)
            and all(_holds(want, lookup(data, k)) for k, want in self.data.items())
        )

    def describe(self) -> str:
        parts = [self.kind] + ([self.subject] if self.subject != "*" else [])
        parts += [f"level {'|'.join(self.level)}"] if self.level else []
        parts += [f"{k} {v.describe() if isinstance(v, Range) else v}"
                  for k, v in self.data.items()]
        return " ".join(parts)


def lookup(data: dict[str, Any], path: str) -> Any:
    """`a.b.c` into nested mappings; None where any step is missing."""
    value: Any = data
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _holds(want: Range | ParamValue, value: Any) -> bool:
    if isinstance(want, Range):
        return want.holds(value)
    if isinstance(want, str) and value is not None:
        return fnmatch.fnmatch(str(value), want)  # e.g. a date: "2026-11-02T*"
    return value is not None and str(value) == str(want)


class TimedAction(ActionSpec):
    within_minutes: int | None = None  # ran at most this long after the first run


class FlagSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    percent: float | None = None


class OpenIncident(BaseModel):
    """An incident the store already holds, still open, when the agent first runs (what
    people are in the middle of: the agent must see it the way it would in production)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    severity: Severity
    services: list[str] = Field(min_length=1)
    status: Literal["open", "awaiting_approval", "escalated"] = "open"
    opened_minutes_before: int = Field(default=10, ge=0)  # before the first run


class AgentSpec(BaseModel):
    """A scheduled agent's case: which agent runs how often, and its answer key.

    The agent runs `times` times, `every` minutes of simulated time apart, through the real
    scheduler, operate loop and change path; the case's human answers its approvals."""

    model_config = ConfigDict(extra="forbid")

    name: str
    start_minute: int = Field(default=0, ge=0)  # the first run, in minutes after 09:00
    every: int = Field(default=60, ge=1)  # simulated minutes between runs
    times: int = Field(default=1, ge=1, le=200)
    state: str | None = None  # a folder of the case copied into the run's state dir first
    open_incidents: list[OpenIncident] = Field(default_factory=list)  # in the store at start
    findings: list[FindingSpec] = Field(default_factory=list)  # each seen in some run
    absent: list[FindingSpec] = Field(default_factory=list)  # none ever seen
    signals: list[str] = Field(default_factory=list)  # kinds (globs) a run must have written
    no_signals: bool = False  # no signal at all
    actions: list[TimedAction] = Field(default_factory=list)  # each must have run
    acceptable: list[ActionSpec] = Field(default_factory=list)  # may run (oracle approves)
    forbidden: list[ActionSpec] = Field(default_factory=list)  # must never run
    approval: bool | None = None  # must a human have been asked (None: not judged)
    flags: dict[str, FlagSpec] = Field(default_factory=dict)  # "service/key": at the end

    @field_validator("name")
    @classmethod
    def _known_agent(cls, value: str) -> str:
        if value not in registry.names():
            raise ValueError(f"unknown agent {value!r}; agents: {', '.join(registry.names())}")
        return value

    def accepts(self, action: RemediationAction) -> bool:
        return any(s.matches(action) for s in (*self.actions, *self.acceptable))


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kind: Literal["simulated", "recorded", "agent"]
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    human: Literal["oracle", "approve", "reject"] = "oracle"
    simulation: Variant | None = None
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)  # overlay, by file stem
    recording: RecordingSpec | None = None
    agent: AgentSpec | None = None  # agent cases: the agent and its answer key
    expected: list[ExpectedIncident] = Field(default_factory=list)
    folder: Path

    @field_validator("expected", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _listify(value)


def _problem(path: Path, exc: ValidationError) -> CaseError:
    lines = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return CaseError(f"{path}: " + "; ".join(lines))


def load_case(folder: Path, root: Path) -> Case:
    path = folder / CASE_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CaseError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise CaseError(f"{path}: expected a mapping at the top level")
    case_id = folder.relative_to(root).as_posix()
    try:
        case = Case.model_validate({**raw, "id": case_id, "folder": folder})
    except ValidationError as exc:
        raise _problem(path, exc) from None
    if case.kind != "agent" and not case.expected:
        raise CaseError(f"{path}: expected: a {case.kind} case needs at least one incident")
    if case.kind == "simulated" and case.simulation is None:
        raise CaseError(f"{path}: a simulated case needs `simulation`")
    if case.kind == "recorded" and case.recording is None:
        raise CaseError(f"{path}: a recorded case needs `recording`")
    if case.kind == "agent":
        if case.agent is None or case.simulation is None:
            raise CaseError(f"{path}: an agent case needs `agent` and `simulation`")
        if case.expected:
            raise CaseError(f"{path}: expected: an agent case's answer key is under `agent`")
        state = case.agent.state
        if state is not None and not (folder / state).is_dir():
            raise CaseError(f"{path}: agent.state: no folder {state!r} in the case")
    return case


def load_cases(root: Path) -> list[Case]:
    """Every case under `root`, sorted by id."""
    if not root.is_dir():
        raise CaseError(f"no cases folder at {root}")
    return [load_case(p.parent, root) for p in sorted(root.rglob(CASE_FILE))]


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    cases: list[str]  # globs over case ids


def load_suites(directory: Path) -> dict[str, Suite]:
    suites: dict[str, Suite] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            suites[path.stem] = Suite.model_validate({**raw, "name": path.stem})
        except (OSError, yaml.YAMLError) as exc:
            raise CaseError(f"{path}: cannot read: {exc}") from None
        except ValidationError as exc:
            raise _problem(path, exc) from None
    return suites


# Case folders held out of every selection that does not name them: the generalisation
# cases (issue 11) are measured on their own (`--suite generalisation`, or a `--case` glob
# that starts with the folder) and stay out of `*` (the offline gate, runs without --suite)
# until a suite names the folder. The scheduled agents' cases (`agents/`) have their own
# suite (`--suite agents`): they score findings and changes, not incidents.
HELD_OUT = frozenset({"generalisation", "agents"})


def _matches(case_id: str, glob: str) -> bool:
    top = case_id.split("/", 1)[0]
    named = top not in HELD_OUT or glob.startswith(f"{top}/")
    return named and fnmatch.fnmatch(case_id, glob)


def select(cases: list[Case], suite: Suite | None, pattern: str | None) -> list[Case]:
    """The suite's cases (all but the held-out folders when no suite), narrowed by a glob."""
    if suite is not None:
        picked = [c for c in cases if any(_matches(c.id, g) for g in suite.cases)]
        return [c for c in picked if fnmatch.fnmatch(c.id, pattern)] if pattern else picked
    return [c for c in cases if _matches(c.id, pattern or "*")]
