"""Where flags live: the `FlagSource` protocol and its file backend, a flagd flag file in a
folder a team keeps in git.

Every write is validated before it reaches disk (an invalid document is never written),
written atomically (a temporary file in the same folder, fsynced, then renamed over the old
one, so flagd's file watcher never reads half a file), and kept in history: one JSON line per
change in `<file>.history.jsonl` beside it, and a git commit when the folder is the top of a
git work tree.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from opsloop.models import FlagChange, FlagState
from opsloop.rollouts import flagd
from opsloop.rollouts.flagd import Document, FlagFileError

GIT_TIMEOUT = 20  # seconds; a hung git must not hang the loop
log = logging.getLogger("opsloop.rollouts")


class FlagSource(Protocol):
    """Flags as the rollout agent and the CLI read and change them."""

    def flags(self, service: str | None = None) -> list[FlagState]: ...

    def set_rollout(self, key: str, percent: float, author: str) -> FlagChange: ...

    def disable(self, key: str, author: str) -> FlagChange: ...


class FileFlagSource:
    """A flagd flag file: the same file flagd (or the OpenFeature flagd provider in file
    mode) serves from."""

    def __init__(self, path: Path, clock: Callable[[], datetime],
                 from_wall: Callable[[float], datetime] | None = None) -> None:
        self.path = path
        self.clock = clock
        self.commit_problem: str | None = None  # why the last write was not committed
        # A flag with no metadata.updatedAt changed when the file did: its mtime (wall time)
        # on `clock`'s timeline (a simulated clock runs apart from the wall's).
        self.from_wall = from_wall or (lambda ts: datetime.fromtimestamp(ts).astimezone())

    @property
    def history_path(self) -> Path:
        return self.path.with_name(self.path.name + ".history.jsonl")

    def read(self) -> Document:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FlagFileError(str(self.path), [f"cannot read: {exc.strerror}"]) from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FlagFileError(str(self.path), [f"line {exc.lineno}, column {exc.colno}: not "
                                                 f"JSON: {exc.msg}"]) from None
        return flagd.check(document, str(self.path))

    def flags(self, service: str | None = None) -> list[FlagState]:
        mtime = self.from_wall(self.path.stat().st_mtime)
        states = [flagd.flag_state(key, flag, mtime)
                  for key, flag in sorted(self.read()["flags"].items())]
        return [s for s in states if service is None or s.service == service]

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        """Changes opsloop made to this file in the last `minutes` (its history file)."""
        if not self.history_path.exists():
            return []
        since = self.clock().timestamp() - minutes * 60
        lines = self.history_path.read_text(encoding="utf-8").splitlines()
        changes = [FlagChange.model_validate_json(line) for line in lines if line.strip()]
        return [c for c in changes if c.at.timestamp() >= since
                and (service is None or c.service == service)]

    def set_rollout(self, key: str, percent: float, author: str) -> FlagChange:
        return self._change(key, author, lambda f, at: flagd.with_percent(f, percent, at))

    def disable(self, key: str, author: str) -> FlagChange:
        return self._change(key, author, flagd.disabled)

    def _change(self, key: str, author: str,
                edit: Callable[[flagd.Flag, datetime], flagd.Flag]) -> FlagChange:
        document = self.read()
        if key not in document["flags"]:
            known = ", ".join(sorted(document["flags"])) or "none"
            raise KeyError(f"{self.path} has no flag {key!r} (flags: {known})")
        now = self.clock()
        before = document["flags"][key]
        after = edit(before, now)
        document["flags"][key] = after
        change = FlagChange(at=now, key=key, service=str(after.get("metadata", {})
                                                         .get("service", "")),
                            enabled=after["state"] == "ENABLED",
                            from_percent=flagd.rollout_percent(before),
                            to_percent=flagd.rollout_percent(after), author=author)
        state = "enabled" if change.enabled else "DISABLED"
        self.write(document, f"flag {key}: {change.from_percent:g}% -> "
                             f"{change.to_percent:g}% ({state}) by {author}", change)
        return change

    def write(self, document: Document, message: str, change: FlagChange | None = None
              ) -> None:
        """Validate, write atomically, keep `change` in the history, and commit when the
        folder is a git work tree.

        The history line follows the rename at once and the (slow) commit comes last, so a
        process killed mid-change loses at most the commit. A commit that fails (a lock a
        killed git left, a hook) does not undo the change: flagd already serves it; the
        reason is in `commit_problem` and the log, and the next commit takes the file as it
        is."""
        flagd.check(document, str(self.path))
        self.commit_problem = None
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=2, sort_keys=False)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if change is not None:
            with self.history_path.open("a", encoding="utf-8") as history:
                history.write(change.model_dump_json() + "\n")
                history.flush()
                os.fsync(history.fileno())
        if (folder / ".git").exists():
            try:
                _commit(folder, [self.path.name], message)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
                said = getattr(exc, "stderr", None) or b""
                detail = (said.decode(errors="replace") if isinstance(said, bytes)
                          else str(said)).strip() or str(exc)
                self.commit_problem = f"not committed in {folder}: {detail}"
                log.warning("%s: %s", self.path, self.commit_problem)


def _commit(folder: Path, names: list[str], message: str) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                       timeout=GIT_TIMEOUT)

    git("add", "--", *names)
    git("-c", "user.name=opsloop", "-c", "user.email=opsloop@localhost", "commit", "-q",
        "-m", message, "--", *names)
