"""What the notifier is told to do: resolved backends (secrets read), routes and retries.

Built from policies/notifications.yaml by `NotificationsPolicy.plan()`; plain data here so
the tools layer never reads policy files itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal


class Lifecycle(StrEnum):
    """What a notification says about its incident (`data["lifecycle"]`); PagerDuty's event
    actions. A notification without one is a trigger."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class SlackTarget:
    name: str
    url: str = field(repr=False)


@dataclass(frozen=True)
class PagerDutyTarget:
    name: str
    routing_key: str = field(repr=False)
    events_url: str
    source: str = "opsloop"


@dataclass(frozen=True)
class WebhookTarget:
    name: str
    url: str = field(repr=False)
    secret: str = field(repr=False)


@dataclass(frozen=True)
class EmailTarget:
    name: str
    host: str
    port: int
    security: Literal["starttls", "ssl", "none"]
    username: str | None
    password: str | None = field(repr=False)
    sender: str
    to: tuple[str, ...]
    ca_file: Path | None = None  # None: the system's certificate authorities


Target = SlackTarget | PagerDutyTarget | WebhookTarget | EmailTarget


@dataclass(frozen=True)
class RetryPlan:
    attempts: int = 6
    timeout_seconds: float = 10.0
    backoff_initial_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    drain_seconds_at_exit: float = 5.0


@dataclass(frozen=True)
class DeliveryPlan:
    targets: dict[str, Target] = field(default_factory=dict)  # enabled backends by name
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "*": other channels
    retry: RetryPlan = field(default_factory=RetryPlan)

    def backends_for(self, channel: str) -> tuple[str, ...]:
        """The enabled backends a channel goes to, in the order the policy lists them."""
        names = self.routes.get(channel, self.routes.get("*", ()))
        return tuple(n for n in names if n in self.targets)
