"""A simulator served over HTTP (`opsloop sim-serve`), seen through the loop's protocols:
its metrics, change feed, clock and actuator as calls to its JSON API.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
from pydantic import TypeAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from opsloop.models import (
    ActionResult,
    ChaosExperiment,
    DeployEvent,
    FlagChange,
    FlagState,
    LogLine,
    MetricSeries,
    RemediationAction,
    ServiceInfo,
)
from opsloop.tools.prometheus import TimeScale

CLOCK_TTL_SECONDS = 0.5  # how long a clock reading stands in for asking again


class SimApiError(RuntimeError):
    """The simulator API could not answer; the message names the URL and the reason."""


class SimClient:
    """Metrics, ChangeFeed, Clock and Actuator over a running `SimServer`; a `Production`
    composes it (`environments.RemoteEnvironment`)."""

    def __init__(self, url: str, timeout: float = 10.0, attempts: int = 3) -> None:
        self.url = url.rstrip("/")
        self.attempts = max(attempts, 1)
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._clock: tuple[float, dict[str, Any]] | None = None

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None) -> Any:
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception_type(httpx.TransportError),
                reraise=True,
            ):
                with attempt:
                    response = self._http.request(method, path, params=params, json=body)
        except httpx.TransportError as exc:
            raise SimApiError(f"cannot reach the simulator at {self.url}: {exc}") from None
        try:
            data = response.json() if response.content else {}
        except ValueError:
            raise SimApiError(f"{self.url}{path} did not answer JSON; is it opsloop "
                              "sim-serve?") from None
        if response.status_code == 404 and path != "/api/clock":
            raise KeyError(data.get("error", f"not found: {path}"))
        if response.status_code != 200:
            raise SimApiError(f"simulator at {self.url} refused {method} {path}: "
                              f"{response.status_code} {data.get('error', '')}")
        return data

    def _get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    # -- Clock ---------------------------------------------------------------------------

    def clock(self, fresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if fresh or self._clock is None or now - self._clock[0] > CLOCK_TTL_SECONDS:
            self._clock = (now, self._get("/api/clock"))
        return self._clock[1]

    def timescale(self) -> TimeScale:
        c = self.clock()
        return TimeScale(minute_seconds=float(c["minute_seconds"]), wall_anchor=float(c["wall"]),
                         env_anchor=datetime.fromisoformat(c["now"]))

    def now(self) -> datetime:
        return datetime.fromisoformat(self.clock(fresh=True)["now"])

    def wait(self, minutes: int) -> None:
        """Let `minutes` simulated minutes pass: advance a manual clock, or sleep through a
        realtime one (bounded: three times the expected wall time, plus ten seconds)."""
        if minutes < 0:
            raise ValueError(f"cannot wait a negative number of minutes ({minutes})")
        if minutes == 0:
            return
        c = self.clock(fresh=True)
        if c["mode"] == "manual":
            self._call("POST", "/api/advance", body={"minutes": minutes})
            self._clock = None
            return
        target = int(c["tick"]) + minutes
        step = float(c["minute_seconds"])
        deadline = time.monotonic() + 3 * minutes * step + 10
        while int(self.clock(fresh=True)["tick"]) < target:
            if time.monotonic() > deadline:
                raise SimApiError(f"the simulator at {self.url} did not reach tick {target} "
                                  "in time; is its clock running?")
            time.sleep(min(step / 2, 1.0))

    # -- Metrics and ChangeFeed ----------------------------------------------------------

    def services(self) -> list[ServiceInfo]:
        return _SERVICES.validate_python(self._get("/api/services"))

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        data = self._get("/api/metric", service=service, metric=metric, minutes=minutes)
        return MetricSeries.model_validate(data)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        value = self._get("/api/average", service=service, metric=metric, minutes=minutes)
        return None if value.get("value") is None else float(value["value"])

    def logs(self, service: str, minutes: int, pattern: str | None = None,
             limit: int = 200) -> list[LogLine]:
        data = self._get("/api/logs", service=service, minutes=minutes, pattern=pattern,
                         limit=limit)
        return _LOGS.validate_python(data)

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        return _DEPLOYS.validate_python(self._get("/api/deploys", service=service,
                                                  minutes=minutes))

    def flags(self, service: str | None = None) -> list[FlagState]:
        return _FLAGS.validate_python(self._get("/api/flags", service=service))

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        return _FLAG_CHANGES.validate_python(self._get("/api/flag_changes", service=service,
                                                       minutes=minutes))

    def variant_counts(self, service: str, flag: str,
                       minutes: int) -> dict[str, dict[str, int]]:
        return _VARIANT_COUNTS.validate_python(self._get("/api/variant_counts", service=service,
                                                         flag=flag, minutes=minutes))

    def flagd_document(self) -> dict[str, Any]:
        """The served flags as a flagd flag-definition document (`GET /flags.json`)."""
        document: dict[str, Any] = self._get("/flags.json")
        return document

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        return _EXPERIMENTS.validate_python(self._get("/api/experiments", service=service))

    def releases(self, service: str) -> list[str]:
        return _RELEASES.validate_python(self._get("/api/releases", service=service))

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        """A release's CycloneDX SBOM (`GET /api/sbom`), as the simulator publishes it."""
        document: dict[str, Any] = self._get("/api/sbom", service=service, version=version)
        return document

    # -- Actuator --------------------------------------------------------------------------

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        body = {"action": action.model_dump(mode="json"), "idempotency_key": idempotency_key}
        return ActionResult.model_validate(self._call("POST", "/api/actions", body=body))

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        body = {"result": result.model_dump(mode="json"), "idempotency_key": idempotency_key}
        return ActionResult.model_validate(self._call("POST", "/api/revert", body=body))

    # -- faults (tests and demos drive production through these) ---------------------------

    def inject(self, kind: str, service: str, params: dict[str, Any] | None = None,
               in_minutes: int = 0) -> dict[str, Any]:
        body = {"kind": kind, "service": service, "params": params or {},
                "in_minutes": in_minutes}
        result: dict[str, Any] = self._call("POST", "/api/faults", body=body)
        return result

    def release_scenario(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/faults/scenario")
        return result


_SERVICES = TypeAdapter(list[ServiceInfo])
_LOGS = TypeAdapter(list[LogLine])
_DEPLOYS = TypeAdapter(list[DeployEvent])
_FLAGS = TypeAdapter(list[FlagState])
_FLAG_CHANGES = TypeAdapter(list[FlagChange])
_EXPERIMENTS = TypeAdapter(list[ChaosExperiment])
_VARIANT_COUNTS = TypeAdapter(dict[str, dict[str, int]])
_RELEASES = TypeAdapter(list[str])
