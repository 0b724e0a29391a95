"""notifications.yaml: where notifications go beyond the local outbox, and how hard to try.

Backends are grouped by type (`slack`, `pagerduty`, `webhook`, `email`), each named; `routes`
sends a channel the code notifies on (`page`, `#ops`, `agents`, ...) to backend names. Secrets
never live in the file: a backend names the environment variable holding its URL, key or
password, and `plan()` reads them when the loop starts, so a missing one stops the start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from opsloop.policy.problems import PolicyError, PolicyProblem, display_path
from opsloop.policy.schema.base import PolicyFile, StrictModel
from opsloop.tools.notifications.config import (
    DeliveryPlan,
    EmailTarget,
    PagerDutyTarget,
    RetryPlan,
    SlackTarget,
    Target,
    WebhookTarget,
)

FILE = "notifications.yaml"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_KINDS = ("slack", "pagerduty", "webhook", "email")


class Delivery(StrictModel):
    """Retries with exponential backoff and jitter, each attempt bounded in time."""

    attempts: int = Field(default=6, ge=1, le=20)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    backoff_initial_seconds: float = Field(default=2.0, ge=0, le=3600)
    backoff_max_seconds: float = Field(default=300.0, ge=0, le=86400)
    drain_seconds_at_exit: float = Field(default=5.0, ge=0, le=120)


class SlackBackend(StrictModel):
    enabled: bool = False
    url_env: str = Field(pattern=_ENV_NAME)  # the incoming webhook URL


class PagerDutyBackend(StrictModel):
    enabled: bool = False
    routing_key_env: str = Field(pattern=_ENV_NAME)  # the Events API v2 integration key
    events_url: str = PAGERDUTY_EVENTS_URL
    source: str = "opsloop"

    @field_validator("events_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("should be an http:// or https:// URL")
        return value


class WebhookBackend(StrictModel):
    enabled: bool = False
    url_env: str = Field(pattern=_ENV_NAME)
    secret_env: str = Field(pattern=_ENV_NAME)  # the HMAC-SHA256 key


class EmailBackend(StrictModel):
    enabled: bool = False
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    ca_file: Path | None = None  # a private CA's certificate; default: the system's CAs
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV_NAME)
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _login_whole(self) -> EmailBackend:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together: set both or neither")
        return self


class NotificationsPolicy(PolicyFile):
    delivery: Delivery = Field(default_factory=Delivery)
    slack: dict[str, SlackBackend] = Field(default_factory=dict)
    pagerduty: dict[str, PagerDutyBackend] = Field(default_factory=dict)
    webhook: dict[str, WebhookBackend] = Field(default_factory=dict)
    email: dict[str, EmailBackend] = Field(default_factory=dict)
    # channel -> backend names; "*" for every channel not listed.
    routes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("routes")
    @classmethod
    def _routes_name_backends(cls, routes: dict[str, list[str]],
                              info: ValidationInfo) -> dict[str, list[str]]:
        known = {name for kind in _KINDS for name in info.data.get(kind) or {}}
        for channel, names in routes.items():
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"{channel}: unknown backend {unknown[0]!r} (backends: "
                                 f"{', '.join(sorted(known)) or 'none defined'})")
        return routes

    @model_validator(mode="after")
    def _names_unique(self) -> NotificationsPolicy:
        kinds: dict[str, str] = {}
        for kind in _KINDS:
            for name in getattr(self, kind):
                if name in kinds:
                    raise ValueError(f"backend name {name!r} is used by both {kinds[name]} and "
                                     f"{kind}: routes name backends, so names must be unique")
                kinds[name] = kind
        return self

    def plan(self, environ: Mapping[str, str] | None = None,
             policies_dir: Path | None = None) -> DeliveryPlan:
        """The enabled backends with their secrets read from the environment; PolicyError
        naming the file, field and variable when one is unset."""
        env = os.environ if environ is None else environ
        shown = display_path((policies_dir or Path("policies")) / FILE)
        problems: list[PolicyProblem] = []

        def secret(kind: str, name: str, field: str, variable: str) -> str:
            value = env.get(variable, "")
            if not value:
                problems.append(PolicyProblem(
                    shown, f"{kind}.{name}.{field}",
                    f"environment variable {variable} is not set: export it before starting "
                    f"opsloop, or set {kind}.{name}.enabled: false", value=variable))
            return value

        targets: dict[str, Target] = {}
        for name, s in self.slack.items():
            if s.enabled:
                targets[name] = SlackTarget(name, secret("slack", name, "url_env", s.url_env))
        for name, p in self.pagerduty.items():
            if p.enabled:
                targets[name] = PagerDutyTarget(
                    name, secret("pagerduty", name, "routing_key_env", p.routing_key_env),
                    p.events_url, p.source)
        for name, w in self.webhook.items():
            if w.enabled:
                targets[name] = WebhookTarget(
                    name, secret("webhook", name, "url_env", w.url_env),
                    secret("webhook", name, "secret_env", w.secret_env))
        for name, e in self.email.items():
            if e.enabled and e.ca_file is not None and not e.ca_file.is_file():
                problems.append(PolicyProblem(
                    shown, f"email.{name}.ca_file", "no such file: point it at the PEM "
                    "certificate of the CA that signed the SMTP server's certificate",
                    value=str(e.ca_file)))
            if e.enabled:
                password = (secret("email", name, "password_env", e.password_env)
                            if e.password_env else None)
                targets[name] = EmailTarget(name, e.host, e.port, e.security, e.username,
                                            password, e.sender, tuple(e.to), e.ca_file)
        if problems:
            raise PolicyError(problems)
        routes = {channel: tuple(n for n in names if n in targets)
                  for channel, names in self.routes.items()}
        d = self.delivery
        retry = RetryPlan(d.attempts, d.timeout_seconds, d.backoff_initial_seconds,
                          d.backoff_max_seconds, d.drain_seconds_at_exit)
        return DeliveryPlan(targets=targets, routes=routes, retry=retry)
