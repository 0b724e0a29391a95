"""What the world looks like through the telemetry tools: series, logs, deploys, flags."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class MetricPoint(BaseModel):
    at: datetime
    value: float


class MetricSeries(BaseModel):
    service: str
    metric: str
    points: list[MetricPoint] = Field(default_factory=list)

    def values(self) -> list[float]:
        return [p.value for p in self.points]


class LogLine(BaseModel):
    at: datetime
    service: str
    level: str  # DEBUG / INFO / WARN / ERROR
    message: str


class DeployEvent(BaseModel):
    at: datetime
    service: str
    version: str
    previous_version: str
    author: str = "ci"
    kind: str = "deploy"  # deploy | config | rollback


class FlagState(BaseModel):
    key: str
    service: str
    enabled: bool
    rollout_percent: float
    updated_at: datetime
    owner: str = ""


class FlagChange(BaseModel):
    at: datetime
    key: str
    service: str
    enabled: bool
    from_percent: float
    to_percent: float
    author: str = ""


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"


class ChaosExperiment(BaseModel):
    """Chaos Toolkit shape: a steady-state hypothesis, a method, and rollbacks."""

    id: str
    title: str
    target_service: str
    status: ExperimentStatus
    started_at: datetime
    steady_state: dict[str, Any] = Field(default_factory=dict)
    method: list[str] = Field(default_factory=list)
    rollbacks: list[str] = Field(default_factory=list)


class ServiceInfo(BaseModel):
    name: str
    tier: int  # customer-impact tier: 1 = customer facing revenue path
    dependencies: list[str] = Field(default_factory=list)
    replicas: int
    version: str
    region: str = "primary"
    team: str = ""
