"""Where an incident's production lives. `sim:<id>` is a simulated fleet saved in the work dir.

An incident names its environment so that a later process (an approval after a restart)
reopens the same production the incident was opened against.
"""

from __future__ import annotations

import uuid

from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment


class UnknownEnvironment(Exception):
    """An environment reference that cannot be opened."""


def new_simulation(scenario: str, seed: int, settings: Settings) -> tuple[str, SimEnvironment]:
    env_id = f"{scenario}-{seed}-{uuid.uuid4().hex[:6]}"
    path = settings.environments_dir / f"{env_id}.json"
    env = SimEnvironment.create(scenario, seed)
    env.autosave_path = path
    env.save(path)
    return f"sim:{env_id}", env


def open_environment(ref: str, settings: Settings) -> SimEnvironment:
    kind, _, env_id = ref.partition(":")
    if kind != "sim" or not env_id:
        raise UnknownEnvironment(f"unknown environment {ref!r}: expected 'sim:<id>'")
    path = settings.environments_dir / f"{env_id}.json"
    if not path.exists():
        raise UnknownEnvironment(f"environment {ref!r} has no saved state at {path}")
    env = SimEnvironment.load(path)
    env.autosave_path = path
    return env
