"""rollouts.yaml: progressive rollout plans for feature flags, as data.

A plan is the steps a flag's rollout percent goes through, how long each step runs before it
is analysed, the analysis (opsloop.rollouts.analysis: Argo Rollouts' semantics) and whether
the outcome owner approves each advance. `defaults` is the plan every managed flag gets;
`flags.<key>` lists the flags the rollout agent manages and overrides any field per flag.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from opsloop.models import DecisionOutcome
from opsloop.policy.schema.base import Minutes, PolicyFile, StrictModel
from opsloop.rollouts.analysis import AnalysisSpec


class RolloutPlan(StrictModel):
    # Whole percents (flagd's fractional weights are integers), rising, ending at 100.
    steps: list[int] = Field(min_length=1)
    interval: Minutes = 60  # each step runs this long before its analysis decides
    # needs_approval: the outcome owner approves every advance; auto: advances run unattended
    # (the guardrails and the error-budget policy still apply). Kills are always automatic.
    advances: DecisionOutcome = DecisionOutcome.NEEDS_APPROVAL
    analysis: AnalysisSpec

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in value) or value != sorted(set(value)):
            raise ValueError(f"steps must rise strictly within 1..100, got {value}")
        if value[-1] != 100:
            raise ValueError(f"the last step must be 100 (a rollout ends at everyone), "
                             f"got {value[-1]}")
        return value

    @field_validator("advances")
    @classmethod
    def _advances(cls, value: DecisionOutcome) -> DecisionOutcome:
        if value is DecisionOutcome.DENY:
            raise ValueError("advances is auto or needs_approval (to stop a rollout, remove "
                             "the flag from flags:)")
        return value


class FlagPlan(StrictModel):
    """A managed flag: its service, and any plan field that differs from `defaults`."""

    service: str
    owner: str = ""
    steps: list[int] | None = None
    interval: Minutes | None = None
    advances: DecisionOutcome | None = None
    analysis: AnalysisSpec | None = None


def _never(value: Any) -> Any:
    return None if value == "never" else value


Lifetime = Annotated[Minutes | None, BeforeValidator(_never)]  # "never": never stale


def _unleash() -> dict[str, int | None]:
    day = 24 * 60
    return {"release": 40 * day, "experiment": 40 * day, "operational": 7 * day,
            "kill_switch": None, "permission": None}


class StalePolicy(StrictModel):
    """When a flag has outlived its purpose (opsloop.rollouts.stale)."""

    lifetimes: dict[str, Lifetime] = Field(default_factory=_unleash)
    unchanged_for: Lifetime = 90 * 24 * 60
    default_kind: str = "release"
    kinds: dict[str, str] = Field(default_factory=dict)  # flag key -> kind

    def kind_of(self, key: str) -> str:
        return self.kinds.get(key, self.default_kind)

    @model_validator(mode="after")
    def _kinds(self) -> StalePolicy:
        known = ", ".join(sorted(self.lifetimes))
        for key, kind in {"default_kind": self.default_kind, **self.kinds}.items():
            if kind not in self.lifetimes:
                raise ValueError(f"{key}: unknown kind {kind!r} (kinds with a lifetime: "
                                 f"{known}; add it under lifetimes)")
        return self


class ExperimentSpec(StrictModel):
    """An A/B experiment on a flag (opsloop.rollouts.experiment): which two variants are
    compared on which metric, and how sure the comparison must be."""

    service: str
    owner: str = ""
    # error_ratio: errors out of requests per variant; conversion: conversions out of requests
    metric: Literal["error_ratio", "conversion"]
    better: Literal["lower", "higher"] | None = None  # default: lower errors, higher conversion
    control: str = Field(min_length=1)
    treatment: str = Field(min_length=1)
    min_sample: int = Field(default=1000, ge=1)  # requests per variant before any verdict
    alpha: float = Field(default=0.05, gt=0, lt=1)  # two-sided significance level
    min_effect: float = Field(default=0.01, gt=0, lt=1)  # the smallest difference that matters

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.control == self.treatment:
            raise ValueError(f"control and treatment are both {self.control!r}: an experiment "
                             "compares two variants")
        if self.metric == "error_ratio" and self.better == "higher":
            raise ValueError("better: higher for metric error_ratio would call the variant "
                             "with more errors the winner; use lower (or leave it out)")
        return self

    @property
    def better_is(self) -> Literal["lower", "higher"]:
        return self.better or ("lower" if self.metric == "error_ratio" else "higher")


class RolloutsPolicy(PolicyFile):
    defaults: RolloutPlan
    flags: dict[str, FlagPlan] = Field(default_factory=dict)
    stale: StalePolicy = Field(default_factory=StalePolicy)
    experiments: dict[str, ExperimentSpec] = Field(default_factory=dict)  # by flag key

    @model_validator(mode="after")
    def _experiment_services(self) -> RolloutsPolicy:
        for key, spec in self.experiments.items():
            managed = self.flags.get(key)
            if managed is not None and managed.service != spec.service:
                raise ValueError(f"experiments.{key}.service is {spec.service!r} but "
                                 f"flags.{key}.service is {managed.service!r}: one flag, one "
                                 "service")
        return self

    def plan_for(self, key: str) -> RolloutPlan | None:
        """The plan for flag `key` (defaults with its overrides); None when not managed."""
        flag = self.flags.get(key)
        if flag is None:
            return None
        overrides = flag.model_dump(exclude_none=True, exclude={"service", "owner"})
        return RolloutPlan.model_validate({**self.defaults.model_dump(), **overrides})
