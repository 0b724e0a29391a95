"""The findings inbox in opsloop's state dir (work/state/security/inbox): `opsloop vulns
ingest` files reports there, the security agent and verification read them back. Files are
kept as they came, so a re-read gives the same findings, and a file that cannot be read at
all is never filed."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from opsloop.security.intake import Intake, load, read

INBOX = "security/inbox"
VEX_FILE = "security/vex.json"


def inbox_dir(state_dir: Path) -> Path:
    return state_dir / INBOX


def vex_path(work_dir: Path) -> Path:
    return work_dir / VEX_FILE


def _filed_path(directory: Path, path: Path, data: bytes) -> Path:
    # The same report filed twice is one file; two reports with one name stay apart, each
    # under its own name (findings name the file they came from).
    return directory / hashlib.sha256(data).hexdigest()[:12] / path.name


def ingest(state_dir: Path, paths: list[Path]) -> list[Path]:
    """File every report into the inbox, atomically. All files are checked first: one that
    cannot be read raises IntakeError naming it, and then nothing is filed."""
    for path in paths:
        load(path)  # raises IntakeError naming the file
    target = inbox_dir(state_dir)
    target.mkdir(parents=True, exist_ok=True)
    filed = []
    for path in paths:
        data = path.read_bytes()
        final = _filed_path(target, path, data)
        final.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ingest.", dir=final.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
        filed.append(final)
    return filed


def filed(state_dir: Path) -> list[Path]:
    directory = inbox_dir(state_dir)
    return sorted(directory.glob("*/*.json")) if directory.is_dir() else []


def read_inbox(state_dir: Path) -> Intake:
    """Every filed report, merged (an empty Intake when nothing was filed)."""
    return read(filed(state_dir))
