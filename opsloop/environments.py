"""Where an incident's production lives, named by a reference a later process can reopen.

- `sim:<id>`: a simulated fleet saved in the work dir (the embedded offline default).
- `recorded:<id>`: a recorded incident replayed by the eval harness (not reopened later).
- `remote:sim=<url>[,prometheus=<url>][,flags=<path>]`: a simulator served over HTTP
  (`opsloop sim-serve`) whose API answers for the catalog, logs, deploys, flags and actions;
  with `prometheus=`, metrics are PromQL against that Prometheus (policies/prometheus/
  promql.yaml), not the simulator's API; with `flags=`, the flags are a team's flagd file
  (an absolute path): they are read from it, and `disable_flag` / `set_flag_rollout` write
  it (validated, atomically, with history and a git commit; opsloop.rollouts.source).

The flag file is part of the reference, not a setting, because a later process that reopens
an incident's production (an approval answered after a restart, `opsloop approve`) must act
on the same file the incident was run against, whatever its own settings say.

An incident names its environment so that a later process (an approval after a restart)
reopens the same production the incident was opened against.

The incident's reference reaches the model (it is in the incident record), so a simulated or
recorded one is opaque: random, naming no scenario, case, fault or seed. Where it came from
is kept beside the saved environments (`environments/origins/`), for people and reports only.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from opsloop.rollouts.actuator import FlagFileActuator
from opsloop.rollouts.flagd import FlagFileError
from opsloop.rollouts.source import FileFlagSource
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.remote import SimClient
from opsloop.tools.prometheus import PrometheusClient, PrometheusMetrics, TimeScale, watch_only
from opsloop.tools.promql import load_promql
from opsloop.tools.protocols import Production


class UnknownEnvironment(Exception):
    """An environment reference that cannot be opened."""


def check_flag_file(path: Path) -> Path:
    """`path` made absolute, once it reads as a valid flagd file; UnknownEnvironment naming
    the file, line and column, or flag and field, otherwise."""
    where = path.expanduser().resolve()
    if "," in str(where):
        raise UnknownEnvironment(f"flag file {where}: a path with a comma cannot be named in "
                                 "an environment reference; move or rename it")
    try:
        FileFlagSource(where, clock=lambda: datetime.now(UTC)).read()
    except FlagFileError as exc:
        raise UnknownEnvironment(str(exc)) from None
    return where


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
    is configured, its flags from a flagd file when one is named."""

    def __init__(self, sim: SimClient, prometheus: PrometheusMetrics | None = None,
                 flag_file: Path | None = None) -> None:
        closers = [sim.close] + ([prometheus.client.close] if prometheus is not None else [])
        # Stamps and history in production's time, so a step's age reads on its clock.
        source = (FileFlagSource(flag_file, clock=sim.now,
                                 from_wall=lambda ts: sim.timescale().to_env(ts))
                  if flag_file is not None else None)
        super().__init__(metrics=sim if prometheus is None else prometheus, changes=sim,
                         clock=sim, actuator=sim if source is None else FlagFileActuator(source,
                                                                                         sim),
                         closers=closers, flag_feed=source)
        self.sim = sim
        self.flag_source = source

    def timescale(self) -> TimeScale:
        return self.sim.timescale()


def remote_ref(sim_url: str, prometheus_url: str | None = None,
               flag_file: Path | None = None) -> str:
    return (f"remote:sim={sim_url}" + (f",prometheus={prometheus_url}" if prometheus_url else "")
            + (f",flags={flag_file}" if flag_file is not None else ""))


def with_flag_file(ref: str, flag_file: Path) -> str:
    """A remote reference whose flags are `flag_file` (replacing any it named)."""
    if not ref.startswith("remote:"):
        raise UnknownEnvironment(f"--flag-file needs a remote environment (remote:sim=<url>,"
                                 f"...), not {ref!r}")
    parts = _remote_parts(ref, ref.partition(":")[2])
    return remote_ref(parts["sim"], parts.get("prometheus"), flag_file)


def _remote_parts(ref: str, rest: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.partition("=")
        url = value.startswith(("http://", "https://"))
        if not sep or not ((key in ("sim", "prometheus") and url)
                           or (key == "flags" and value.startswith("/"))):
            raise UnknownEnvironment(
                f"environment {ref!r}: expected remote:sim=<http url>[,prometheus=<http url>]"
                f"[,flags=<absolute path of a flagd file>], got {item!r}")
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
    flag_file = Path(parts["flags"]) if "flags" in parts else None
    if flag_file is not None and not flag_file.is_file():
        sim.close()
        raise UnknownEnvironment(f"environment {ref!r}: no flag file at {flag_file}")
    return RemoteEnvironment(sim, prometheus, flag_file)


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
