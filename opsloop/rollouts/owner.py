"""The outcome owner's decisions about managed flags, kept durably: hold, resume, and the
answer to a kill (temporary: the owner re-enables it; rework: it goes back to its team).

One JSON file, `<state_dir>/rollout-owner.json`, holds every flag's history; entries are only
appended, and a flag's state now is read from them (`FlagOwnerState`). A write takes an
exclusive lock on a sibling lock file (flock), reads, appends and replaces the file atomically
(temp file, fsync, os.replace): the CLI, the API and `opsloop run` are separate processes
that may write at once, and a plain JSON file stays readable and diffable by people, which a
SQLite file would not. A reader never needs the lock: os.replace makes every read see one
whole version.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FILE_NAME = "rollout-owner.json"
Verb = Literal["hold", "resume", "kill", "advance", "answer"]
Answer = Literal["temporary", "rework"]
ANSWERS: tuple[Answer, ...] = ("temporary", "rework")


class OwnerFileError(ValueError):
    """The owner file cannot be read: names the file and what is wrong."""


class OwnerEntry(BaseModel):
    """One decision by a person about one flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verb: Verb
    by: str = Field(min_length=1)
    at: datetime
    reason: str = ""
    answer: Answer | None = None  # verb "answer" only
    to_percent: int | None = None  # verb "advance" only
    record: str | None = None  # the change record a kill or an advance opened
    # verb "answer": the flag's last change when answered (the kill the answer is about)
    flag_changed_at: datetime | None = None


class OwnerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    flags: dict[str, list[OwnerEntry]] = Field(default_factory=dict)


class FlagOwnerState(BaseModel):
    """A flag's owner state now, read from its history."""

    hold: OwnerEntry | None = None  # the hold in force (no resume after it)
    answer: OwnerEntry | None = None  # the last answer to a kill
    history: list[OwnerEntry] = Field(default_factory=list)

    @classmethod
    def of(cls, history: list[OwnerEntry]) -> FlagOwnerState:
        hold = answer = None
        for entry in history:
            if entry.verb == "hold":
                hold = entry
            elif entry.verb == "resume":
                hold = None
            elif entry.verb == "answer":
                answer = entry
        return cls(hold=hold, answer=answer, history=history)

    def answer_for(self, flag_changed_at: datetime, killed: bool) -> OwnerEntry | None:
        """The answer that still applies: the flag is still off and has not changed since
        the answer was given (re-enabled or killed again, it has moved past it). The flag's
        last change is compared as recorded, not by clock: production's clock may not have
        moved between the answer and the next change."""
        answer = self.answer
        if answer is None or not killed:
            return None
        if answer.flag_changed_at is not None:
            return answer if answer.flag_changed_at == flag_changed_at else None
        return answer if answer.at >= flag_changed_at else None


class OwnerBook:
    """The owner file of one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._lock_path = state_dir / f"{FILE_NAME}.lock"

    def read(self) -> OwnerFile:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return OwnerFile()
        except OSError as exc:
            raise OwnerFileError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            return OwnerFile.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise OwnerFileError(
                f"{self.path}: {where}: {first['msg']} ({exc.error_count()} problem(s)); "
                "fix or move the file (the owner's holds and answers are read from it)"
            ) from None

    def state(self, flag: str) -> FlagOwnerState:
        return FlagOwnerState.of(self.read().flags.get(flag, []))

    def states(self) -> dict[str, FlagOwnerState]:
        return {k: FlagOwnerState.of(v) for k, v in self.read().flags.items()}

    def append(self, flag: str, entry: OwnerEntry) -> FlagOwnerState:
        """Add `entry` to the flag's history, under the lock; the flag's state after it."""
        with self._locked():
            book = self.read()
            history = [*book.flags.get(flag, []), entry]
            book.flags[flag] = history
            self._write(book)
        return FlagOwnerState.of(history)

    def hold(self, flag: str, by: str, reason: str, at: datetime) -> FlagOwnerState:
        return self.append(flag, OwnerEntry(verb="hold", by=by, at=at, reason=reason))

    def resume(self, flag: str, by: str, at: datetime, reason: str = "") -> FlagOwnerState:
        return self.append(flag, OwnerEntry(verb="resume", by=by, at=at, reason=reason))

    def answer_kill(self, flag: str, answer: Answer, by: str, reason: str, at: datetime,
                    flag_changed_at: datetime | None = None) -> FlagOwnerState:
        """`flag_changed_at`: the killed flag's last change, which the answer is about."""
        return self.append(flag, OwnerEntry(verb="answer", by=by, at=at, reason=reason,
                                            answer=answer, flag_changed_at=flag_changed_at))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, book: OwnerFile) -> None:
        data: dict[str, Any] = book.model_dump(mode="json", exclude_none=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE_NAME}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
