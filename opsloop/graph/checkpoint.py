"""The checkpointer factory: durable graph state, so approvals survive a restart."""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
import sqlite3
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel

from opsloop import models
from opsloop.crashpoints import crash_point
from opsloop.graph import agent_run, state
from opsloop.scheduled import base as scheduled_base
from opsloop.store import StoreError, open_sqlite

# Where a type lived when older checkpoints were written; each still imports from there.
_MOVED = [("opsloop.models.incident", "TimelineEvent")]


def _state_types() -> list[tuple[str, str]]:
    """Our domain types and the graph's own records, the only custom classes the checkpoint
    may rebuild."""
    modules = [importlib.import_module(m.name) for m in pkgutil.iter_modules(
        models.__path__, prefix="opsloop.models.")]  # every model type, exported or not
    return sorted({
        (obj.__module__, obj.__name__)
        for module in (models, *modules, state, agent_run, scheduled_base)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseModel | enum.Enum) and obj.__module__.startswith("opsloop.")
    }) + _MOVED


class _Saver(SqliteSaver):
    """SqliteSaver with the crash suite's point after each checkpoint is written."""

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        saved = super().put(config, checkpoint, metadata, new_versions)
        crash_point("checkpoint.saved")
        return saved


def sqlite_checkpointer(path: Path) -> SqliteSaver:
    conn = open_sqlite(path, "checkpoint file")
    conn.isolation_level = "DEFERRED"  # the implicit transactions SqliteSaver expects
    try:
        conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path}: not a checkpoint file: {exc}") from exc
    return _Saver(conn, serde=serializer())


def serializer() -> JsonPlusSerializer:
    """How checkpoints are written and read back: only our own types are rebuilt."""
    return JsonPlusSerializer(allowed_msgpack_modules=_state_types())


def memory_checkpointer() -> InMemorySaver:
    """A checkpointer that forgets on exit, with the same rules for what it rebuilds: for
    running a graph piece on its own (tests, a dry run)."""
    return InMemorySaver(serde=serializer())
