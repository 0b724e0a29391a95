"""Where an incident's production lives, named by a reference a later process can reopen.

- `sim:<id>`: a simulated fleet saved in the work dir (the embedded offline default).
- `recorded:<id>`: a recorded incident replayed by the eval harness (not reopened later).
- `remote:sim=<url>[,prometheus=<url>]`: a simulator served over HTTP (`opsloop sim-serve`)
  whose API answers for the catalog, logs, deploys, flags and actions; with `prometheus=`,
  metrics are PromQL against that Prometheus (policies/prometheus/promql.yaml), not the
  simulator's API.

An incident names its environment so that a later process (an approval after a restart)
reopens the same production the incident was opened against.

The incident's reference reaches the model (it is in the incident record), so a simulated or
recorded one is opaque: random, naming no scenario, case, fault or seed. Where it came from
is kept beside the saved environments (`environments/origins/`), for people and reports only.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.remote import SimClient
from opsloop.tools.prometheus import PrometheusClient, PrometheusMetrics, TimeScale, watch_only
from opsloop.tools.promql import load_promql
from opsloop.tools.protocols import Production


class UnknownEnvironment(Exception):
    """An environment reference that cannot be opened."""


class Origin(BaseModel):
    """What an opaque environment reference stands for: never on the incident, never in a prompt."""

    model_config = ConfigDict(extra="ignore")

    ref: str
    scenario: str | None = None  # a built-in scenario, or an eval case's base scenario
    case: str | None = None  # an eval case id
    seed: int | None = None

    def describe(self) -> str:
        """`case simulated/x (bad_deploy, seed 7)`, `scenario bad_deploy, seed 7`, ..."""
        detail = ", ".join(p for p in (self.scenario or "",
                                       f"seed {self.seed}" if self.seed is not None else "") if p)
        if self.case:
            return f"case {self.case}" + (f" ({detail})" if detail else "")
        return f"scenario {detail}" if detail else "unknown origin"


def opaque_ref(kind: str) -> str:
    """A fresh `<kind>:<12 hex>` reference: random, so it can tell a model nothing."""
    return f"{kind}:{uuid.uuid4().hex[:12]}"


def _origin_path(ref: str, settings: Settings) -> Path:
    kind, _, env_id = ref.partition(":")
    return settings.environments_dir / "origins" / f"{kind}-{env_id}.json"


def record_origin(origin: Origin, settings: Settings) -> None:
    """Write down where `origin.ref` came from, beside the saved environments."""
    path = _origin_path(origin.ref, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(origin.model_dump_json(exclude_none=True), encoding="utf-8")


def origin_of(ref: str, settings: Settings) -> Origin | None:
    """Where an environment came from, if this work dir recorded it (None for remote ones)."""
    env_id = ref.partition(":")[2]
    if not env_id.isalnum():  # remote refs, and anything that could leave the folder
        return None
    try:
        return Origin.model_validate(json.loads(_origin_path(ref, settings).read_text("utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def new_simulation(scenario: str, seed: int, settings: Settings) -> tuple[str, SimEnvironment]:
    """A fresh simulated production saved under an opaque `sim:<id>`, its origin kept aside."""
    ref = opaque_ref("sim")
    path = settings.environments_dir / f"{ref.partition(':')[2]}.json"
    env = SimEnvironment.create(scenario, seed)
    env.autosave_path = path
    env.save(path)
    record_origin(Origin(ref=ref, scenario=scenario, seed=seed), settings)
    return ref, env


class RemoteEnvironment(Production):
    """A served simulator (clock, change feed, actuator), its metrics from Prometheus when one
    is configured."""

    def __init__(self, sim: SimClient, prometheus: PrometheusMetrics | None = None) -> None:
        closers = [sim.close] + ([prometheus.client.close] if prometheus is not None else [])
        super().__init__(metrics=sim if prometheus is None else prometheus, changes=sim,
                         clock=sim, actuator=sim, closers=closers)
        self.sim = sim

    def timescale(self) -> TimeScale:
        return self.sim.timescale()


def remote_ref(sim_url: str, prometheus_url: str | None = None) -> str:
    return f"remote:sim={sim_url}" + (f",prometheus={prometheus_url}" if prometheus_url else "")


def _remote_parts(ref: str, rest: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in ("sim", "prometheus") or not value.startswith(("http://",
                                                                               "https://")):
            raise UnknownEnvironment(
                f"environment {ref!r}: expected remote:sim=<http url>[,prometheus=<http url>], "
                f"got {item!r}")
        parts[key] = value
    if "sim" not in parts:
        raise UnknownEnvironment(f"environment {ref!r} names no sim=<url>")
    return parts


def open_remote(ref: str, settings: Settings) -> RemoteEnvironment:
    parts = _remote_parts(ref, ref.partition(":")[2])
    sim = SimClient(parts["sim"], timeout=settings.http_timeout_seconds)
    prometheus = None
    if "prometheus" in parts:
        promql = load_promql(settings.promql_path)
        client = PrometheusClient(parts["prometheus"], timeout=settings.http_timeout_seconds)
        prometheus = PrometheusMetrics(client, promql, catalog=sim, timescale=sim.timescale)
    return RemoteEnvironment(sim, prometheus)


def open_prometheus(url: str, settings: Settings) -> Production:
    """Production watched through one Prometheus (read-only), with the settings' PromQL."""
    client = PrometheusClient(url, timeout=settings.http_timeout_seconds)
    return watch_only(client, load_promql(settings.promql_path))


def open_environment(ref: str, settings: Settings) -> Production:
    kind, _, env_id = ref.partition(":")
    if kind == "remote":
        return open_remote(ref, settings)
    if kind != "sim" or not env_id:
        raise UnknownEnvironment(
            f"unknown environment {ref!r}: expected 'sim:<id>' or 'remote:sim=<url>'")
    path = settings.environments_dir / f"{env_id}.json"
    if not path.exists():
        raise UnknownEnvironment(f"environment {ref!r} has no saved state at {path}")
    try:
        env = SimEnvironment.load(path)
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        detail = exc.errors()[0].get("msg") if isinstance(exc, ValidationError) else exc
        raise UnknownEnvironment(
            f"environment {ref!r}: its saved state {path} cannot be read ({detail}); "
            f"restore the file from a backup") from None
    env.autosave_path = path
    return env
