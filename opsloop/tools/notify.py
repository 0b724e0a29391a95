"""The offline notifier: an append-only outbox file a chat or paging bridge can tail."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class OutboxNotifier:
    def __init__(self, path: Path) -> None:
        self.path = path

    def notify(self, channel: str, message: str, data: dict[str, Any]) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {"at": datetime.now(UTC).isoformat(), "channel": channel, "message": message,
                "data": data}
        # One write call per line keeps concurrent appenders from interleaving within a line.
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str, sort_keys=True) + "\n")
        return f"{channel} via {self.path}"
