"""intake.yaml: Alertmanager-style grouping, silences and inhibition, with its semantics."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from opsloop.policy.schema.base import PolicyFile, StrictModel

_MATCHER_TEXT = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"(.*)"|(\S*))\s*$')


class Matcher(StrictModel):
    """Alertmanager's matcher: {name, value, isRegex, isEqual}, or the text `name=~"value"`.

    As in Alertmanager, a regex must match the whole label value and a missing label
    has the value "" (so `team=""` matches alerts without a team).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    value: str
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        match = _MATCHER_TEXT.match(data)
        if not match:
            raise ValueError('not a matcher: write name="value", name!="value", name=~"regex"')
        name, op, quoted, bare = match.groups()
        return {
            "name": name,
            "value": quoted if quoted is not None else bare,
            "isRegex": op in ("=~", "!~"),
            "isEqual": op in ("=", "=~"),
        }

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.is_regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value {self.value!r} is not a valid regex: {exc}") from exc
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.is_regex:
            hit = re.fullmatch(self.value, actual) is not None
        else:
            hit = actual == self.value
        return hit if self.is_equal else not hit


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


LabelTest = Callable[[Mapping[str, str]], bool]


def compile_matchers(matchers: Iterable[Matcher]) -> LabelTest:
    """`all_match` for these matchers, with each regex compiled once rather than per alert."""
    tests = [
        (m.name, m.value, re.compile(m.value).fullmatch if m.is_regex else None, m.is_equal)
        for m in matchers
    ]

    def match(labels: Mapping[str, str]) -> bool:
        for name, value, fullmatch, is_equal in tests:
            actual = labels.get(name, "")
            hit = fullmatch(actual) is not None if fullmatch is not None else actual == value
            if hit is not is_equal:
                return False
        return True

    return match


class Silence(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = ""
    matchers: list[Matcher] = Field(min_length=1)
    # Alertmanager silences carry an offset; a naive time would be ambiguous (and
    # uncomparable with alert times), so it is an error here, not a crash at intake.
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy", min_length=1)
    comment: str = Field(min_length=1)  # Alertmanager requires a reason; so do we

    @model_validator(mode="after")
    def _ends_after_start(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError("endsAt must be after startsAt")
        return self

    def silences(self, labels: Mapping[str, str], now: datetime) -> bool:
        """Active (startsAt <= now < endsAt) and every matcher matches."""
        return self.starts_at <= now < self.ends_at and all_match(self.matchers, labels)


class InhibitRule(StrictModel):
    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    def inhibits(self, target: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
        """Whether some firing source alert mutes `target`, as Alertmanager's inhibitor does.

        A target that also matches the source matchers is only muted by sources that do not
        match the target matchers, so two alerts matching both sides cannot mute each other.
        """
        if not all_match(self.target_matchers, target):
            return False
        two_sided = all_match(self.source_matchers, target)
        for source in firing:
            if not all_match(self.source_matchers, source):
                continue
            if any(source.get(n, "") != target.get(n, "") for n in self.equal):
                continue
            if two_sided and all_match(self.target_matchers, source):
                continue
            return True
        return False


class IntakePolicy(PolicyFile):
    group_by: list[str] = Field(default_factory=lambda: ["env"])
    group_wait_minutes: int = Field(default=1, ge=0)
    group_interval_minutes: int = Field(default=5, gt=0)
    repeat_interval_minutes: int = Field(default=240, gt=0)
    silences: list[Silence] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)

    @field_validator("group_by")
    @classmethod
    def _no_duplicate_labels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("group_by lists a label twice")
        return value

    def silenced(self, labels: Mapping[str, str], now: datetime) -> bool:
        return any(s.silences(labels, now) for s in self.silences)

    def inhibited(self, target: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
        sources = list(firing)
        return any(rule.inhibits(target, sources) for rule in self.inhibit_rules)
