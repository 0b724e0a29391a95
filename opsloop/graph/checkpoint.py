"""The checkpointer factory: durable graph state, so approvals survive a restart."""

from __future__ import annotations

import enum
import inspect
import sqlite3
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel

from opsloop import models


def _state_types() -> list[tuple[str, str]]:
    """Our domain types, the only custom classes the checkpoint may rebuild."""
    return [
        (obj.__module__, obj.__name__)
        for _, obj in inspect.getmembers(models, inspect.isclass)
        if issubclass(obj, BaseModel | enum.Enum) and obj.__module__.startswith("opsloop.")
    ]


def sqlite_checkpointer(path: Path) -> SqliteSaver:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    serde = JsonPlusSerializer(allowed_msgpack_modules=_state_types())
    return SqliteSaver(conn, serde=serde)
