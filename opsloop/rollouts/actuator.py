"""The flag actions (`disable_flag`, `set_flag_rollout`) run on a team's flagd file.

`FlagFileActuator` is an `Actuator` (opsloop.tools.protocols) for the two flag actions:
each runs once per idempotency key (results are kept beside the flag file, in
`<file>.actions.json`, written before the caller hears of them), never raises, and records
in `undo` what the flag served before, so verification can put it back. Any other action
type goes to the actuator it wraps (`rest`), or fails with a reason when there is none.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from opsloop.models import ActionResult, ActionStatus, RemediationAction
from opsloop.rollouts import flagd
from opsloop.rollouts.flagd import FlagFileError
from opsloop.rollouts.source import FileFlagSource

FLAG_ACTIONS = frozenset({"disable_flag", "set_flag_rollout"})
AUTHOR = "opsloop"


class _Actuator(Protocol):
    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult: ...

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult: ...


class FlagFileActuator:
    def __init__(self, source: FileFlagSource, rest: _Actuator | None = None) -> None:
        self.source = source
        self.rest = rest

    @property
    def results_path(self) -> Path:
        return self.source.path.with_name(self.source.path.name + ".actions.json")

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        if action.type not in FLAG_ACTIONS:
            if self.rest is not None:
                return self.rest.execute(action, idempotency_key)
            return self._result(action.id, action.describe(), idempotency_key,
                                ActionStatus.FAILED, f"not run: {action.type} is not a flag "
                                                     "action and no other actuator is set")
        replay = self._replay(idempotency_key)
        if replay is not None:
            return replay
        return self._keep(self._run(action, idempotency_key))

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        if result.undo.get("kind") != "flag":
            if self.rest is not None:
                return self.rest.revert(result, idempotency_key)
            return self._result(result.action_id, f"revert {result.action}", idempotency_key,
                                ActionStatus.SKIPPED, "not reverted: nothing to undo")
        replay = self._replay(idempotency_key)
        if replay is not None:
            return replay
        undo = result.undo
        key, percent, enabled = str(undo["flag"]), float(undo["percent"]), bool(undo["enabled"])
        try:
            if percent > 0:
                self.source.set_rollout(key, percent, f"{AUTHOR} (revert)")
            if not enabled or percent <= 0:
                self.source.disable(key, f"{AUTHOR} (revert)")
        except (KeyError, ValueError, OSError) as exc:
            return self._keep(self._result(result.action_id, f"revert {result.action}",
                                           idempotency_key, ActionStatus.FAILED, str(exc)))
        state = "enabled" if enabled and percent > 0 else "DISABLED"
        return self._keep(self._result(result.action_id, f"revert {result.action}",
                                       idempotency_key, ActionStatus.SUCCEEDED,
                                       f"restored flag {key} to {percent:g}% ({state})"))

    def _run(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        def failed(detail: str) -> ActionResult:
            return self._result(action.id, action.describe(), idempotency_key,
                                ActionStatus.FAILED, detail)

        key = str(action.params.get("flag", ""))
        try:
            flags = self.source.read()["flags"]
        except FlagFileError as exc:
            return failed(str(exc))
        flag = flags.get(key)
        if flag is None:
            return failed(f"{self.source.path} has no flag {key!r} (flags: "
                          f"{', '.join(sorted(flags)) or 'none'})")
        owner = str((flag.get("metadata") or {}).get("service", ""))
        if owner and owner != action.service:
            return failed(f"flag {key} belongs to {owner} (its metadata.service), not "
                          f"{action.service}")
        undo: dict[str, Any] = {"kind": "flag", "flag": key,
                                "enabled": flag.get("state") == "ENABLED",
                                "percent": flagd.rollout_percent(flag)}
        try:
            if action.type == "disable_flag":
                change = self.source.disable(key, AUTHOR)
            else:
                percent = action.params.get("percent")
                if not isinstance(percent, int | float) or isinstance(percent, bool):
                    return failed(f"set_flag_rollout needs a number percent, got {percent!r}")
                change = self.source.set_rollout(key, float(percent), AUTHOR)
        except (KeyError, ValueError, OSError) as exc:
            return failed(str(exc))
        state = "enabled" if change.enabled else "DISABLED"
        unsaved = f" ({self.source.commit_problem})" if self.source.commit_problem else ""
        result = self._result(action.id, action.describe(), idempotency_key,
                              ActionStatus.SUCCEEDED,
                              f"flag {key}: {change.from_percent:g}% -> {change.to_percent:g}% "
                              f"({state}) in {self.source.path.name}{unsaved}")
        return result.model_copy(update={"undo": undo})

    def _result(self, action_id: str, what: str, key: str, status: ActionStatus,
                detail: str) -> ActionResult:
        return ActionResult(action_id=action_id, action=what, idempotency_key=key,
                            status=status, detail=detail, at=self.source.clock())

    def _results(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.results_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return loaded

    def _replay(self, key: str) -> ActionResult | None:
        stored = self._results().get(key)
        if stored is None:
            return None
        return ActionResult.model_validate(stored).model_copy(update={"replayed": True})

    def _keep(self, result: ActionResult) -> ActionResult:
        """The result is on disk (atomically) before the caller hears of it."""
        results = {**self._results(), result.idempotency_key: result.model_dump(mode="json")}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.results_path.name}.",
                                   dir=self.results_path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(results, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.results_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return result
