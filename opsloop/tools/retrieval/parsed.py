"""Runbooks as the index last parsed them, by file and content hash, kept beside the index.

Reopening an index of thousands of runbooks would otherwise parse every file's front matter
and sections again although none changed. An entry is used only for a file whose bytes hash
the same and only when the code that parses and validates runbooks is byte for byte the code
that wrote it; anything else is parsed afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsloop import models, runbooks
from opsloop.runbooks.format import Runbook


def _code_digest() -> str:
    digest = hashlib.sha256()
    for package in (runbooks, models):
        for source in sorted(Path(next(iter(package.__path__))).glob("*.py")):
            digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()


class ParsedRunbooks:
    """A file's parsed Runbook while its content hash is unchanged; `save` keeps those used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.code = _code_digest()
        self._saved: dict[str, list[Any]] = {}
        self._now: dict[str, list[Any]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("code") == self.code and isinstance(data.get("files"), dict):
                self._saved = data["files"]
        except (OSError, ValueError, AttributeError):
            pass  # none yet, torn or foreign: every file is parsed

    def get(self, file: str, digest: str) -> Runbook | None:
        entry = self._saved.get(file)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == digest):
            return None
        try:
            runbook = Runbook.model_validate(entry[1])
        except ValidationError:
            return None
        self._now[file] = entry
        return runbook

    def put(self, file: str, digest: str, runbook: Runbook) -> None:
        self._now[file] = [digest, runbook.model_dump(mode="json")]

    def save(self) -> None:
        """Write what this refresh read, when it differs from what was saved; atomic."""
        if self._now == self._saved:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"code": self.code, "files": self._now}),
                           encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a read-only index dir: parsed again next time
        self._saved = self._now
