"""`opsloop eval replay --policies DIR`: what other policies would have decided for the
stored incidents' actions (the replay itself is `opsloop.policy.replay`, pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.policy import Policies, PolicyError, ProblemLevel, check_policies, load_policies
from opsloop.policy.replay import PolicyReplay, ReplayedAction, replay
from opsloop.settings import Settings
from opsloop.store import IncidentStore

COLUMNS = ["incident", "action", "severity", "before", "after"]


class ReplayError(ValueError):
    """Policies that cannot be loaded; the message lists every problem."""


@dataclass
class ReplayRun:
    """A replay of the stored incidents, and what a person should know about its inputs."""

    current_dir: Path
    proposed_dir: Path
    store: Path
    result: PolicyReplay
    incidents: int
    unsafe: list[str] = field(default_factory=list)  # what `policy check` would refuse in DIR
    problems: list[str] = field(default_factory=list)  # stored incidents that did not read

    def to_dict(self) -> dict[str, Any]:
        return {"current": str(self.current_dir), "proposed": str(self.proposed_dir),
                "store": str(self.store), "incidents": self.incidents, "unsafe": self.unsafe,
                "problems": self.problems, **self.result.to_dict()}


def replay_store(settings: Settings, proposed_dir: Path) -> ReplayRun:
    """Replay every stored incident under settings' policies and under `proposed_dir`'s.

    The proposed policies are loaded even when unsafe (a replay runs nothing): what
    `opsloop policy check` would refuse is listed in `unsafe`."""
    current = _load(settings.policies_dir, settings.allow_unsafe_policies)
    proposed = _load(proposed_dir, True)
    unsafe = [str(p) for p in check_policies(proposed_dir) if p.level is ProblemLevel.ERROR]
    path = settings.state_dir / "opsloop.db"
    problems: list[str] = []
    incidents = []
    if path.is_file():  # a replay never creates a store
        store = IncidentStore(path)
        try:
            incidents = store.incidents(problems)
        finally:
            store.close()
    return ReplayRun(current_dir=settings.policies_dir, proposed_dir=proposed_dir, store=path,
                     result=replay(incidents, current, proposed), incidents=len(incidents),
                     unsafe=unsafe, problems=problems)


def _load(directory: Path, allow_unsafe: bool) -> Policies:
    try:
        return load_policies(directory, allow_unsafe=allow_unsafe)
    except PolicyError as exc:
        raise ReplayError(f"policies in {directory} do not load:\n{exc}") from None


def row(action: ReplayedAction) -> list[str]:
    """One table row: incident, action, severity, old outcome (rule), new outcome (rule)."""
    return [action.incident_id, action.action, action.severity,
            f"{action.before.outcome.value} ({action.before.rule})",
            f"{action.after.outcome.value} ({action.after.rule})"]
