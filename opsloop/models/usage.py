"""What talking to a model cost: one record per call, totals per incident and per specialist."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, computed_field


class ModelCall(BaseModel):
    """One request to a chat model, as the response reported it."""

    id: str  # unique per call, so records merged from several places are counted once
    at: datetime  # wall clock: cost and latency are about the real world, not simulated time
    purpose: str  # specialist | repair | narrative | ask
    specialist: str = ""  # the specialist that made it; "" for incident-wide calls
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0  # all attempts, backoff included
    attempts: int = 1  # 1 + retries
    outcome: str = "ok"  # ok | invalid (answer did not validate) | error (no answer)
    error: str = ""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageTotals(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    latency_ms: float = 0.0
    retries: int = 0
    failed: int = 0  # calls whose outcome was not ok


def totals(calls: list[ModelCall]) -> UsageTotals:
    return UsageTotals(
        calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        total_tokens=sum(c.total_tokens for c in calls),
        latency_ms=round(sum(c.latency_ms for c in calls), 1),
        retries=sum(c.attempts - 1 for c in calls),
        failed=sum(1 for c in calls if c.outcome != "ok"),
    )


class ModelUsage(BaseModel):
    """Every model call an incident made; the totals are derived, and serialized with it."""

    calls: list[ModelCall] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> UsageTotals:
        return totals(self.calls)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def by_specialist(self) -> dict[str, UsageTotals]:
        """Per specialist; incident-wide calls (the postmortem narrative) under their purpose."""
        groups: dict[str, list[ModelCall]] = {}
        for call in self.calls:
            groups.setdefault(call.specialist or call.purpose, []).append(call)
        return {name: totals(calls) for name, calls in groups.items()}

    def merged(self, more: list[ModelCall]) -> ModelUsage:
        """These calls plus `more`, each call once."""
        seen = {c.id for c in self.calls}
        calls = list(self.calls)
        for call in more:
            if call.id not in seen:
                seen.add(call.id)
                calls.append(call)
        return ModelUsage(calls=calls)
