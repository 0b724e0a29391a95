"""What every node needs, passed in at invoke time (never imported as globals)."""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.llm.client import ModelClient
from opsloop.policy import Policies
from opsloop.settings import Settings
from opsloop.store import IncidentStore
from opsloop.tools.protocols import Actuator, Clock, Notifier, RunbookIndex, Telemetry


@dataclass
class LoopContext:
    settings: Settings
    policies: Policies
    telemetry: Telemetry
    actuator: Actuator
    clock: Clock
    runbooks: RunbookIndex
    notifier: Notifier
    store: IncidentStore
    model: ModelClient | None = None  # None: specialists reason offline
    # A scheduled agent's run stops between steps past this time.monotonic() value (its
    # max_run_time from schedule.yaml, counted from this invocation).
    deadline: float | None = None
