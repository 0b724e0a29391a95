"""The offline notifier: an append-only outbox file a chat or paging bridge can tail.

A notification with a key goes out once per key, whatever replays: the key is recorded in a
ledger before the line is written and marked delivered after, so a step re-run after a crash
finds it. Only when the process died between the two is the outbox read, to see whether
the line made it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from opsloop.crashpoints import crash_point


class NoticeLedger(Protocol):
    def notice_state(self, key: str) -> str | None: ...
    def notice_recorded(self, key: str, channel: str) -> None: ...
    def notice_delivered(self, key: str) -> None: ...


class OutboxNotifier:
    def __init__(self, path: Path, ledger: NoticeLedger | None = None) -> None:
        self.path = path
        self.ledger = ledger

    def notify(self, channel: str, message: str, data: dict[str, Any],
               key: str | None = None) -> str:
        where = f"{channel} via {self.path}"
        if key is not None and self.ledger is not None:
            state = self.ledger.notice_state(key)
            if state == "delivered" or (state == "pending" and self._in_outbox(key)):
                self.ledger.notice_delivered(key)
                return where
            self.ledger.notice_recorded(key, channel)
            crash_point("notify.recorded")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {"at": datetime.now(UTC).isoformat(), "channel": channel, "message": message,
                "data": data, "key": key}
        # One write call per line keeps concurrent appenders from interleaving within a line.
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str, sort_keys=True) + "\n")
        crash_point("notify.written")
        if key is not None and self.ledger is not None:
            self.ledger.notice_delivered(key)
        return where

    def _in_outbox(self, key: str) -> bool:
        """Whether a line with this key reached the outbox (read only after a crash)."""
        if not self.path.exists():
            return False
        needle = json.dumps(key)
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                if needle in raw:
                    try:
                        if json.loads(raw).get("key") == key:
                            return True
                    except json.JSONDecodeError:
                        continue  # a torn last line: that write did not complete
        return False
