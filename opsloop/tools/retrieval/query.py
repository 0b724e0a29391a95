"""Retrieval queries built from a whole alert: name, labels, summary and description.

Label values that are identifiers (pod hashes, IPs, ports, long numbers) never match a
runbook and only dilute the query, so they are left out; the words people wrote stay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_IDENTIFIER = re.compile(
    r"^(?:\d[\d.:]*|[0-9a-f]{8,}|.*-[a-z0-9]{5,10}-[a-z0-9]{4,5}|ip-[\d-]+|\S+:\d+)$", re.I)
_SKIP_LABELS = frozenset({"alertname", "severity", "prometheus", "replica", "job", "endpoint",
                          "instance", "uid", "pod_template_hash", "controller_revision_hash"})


def alert_query(name: str, labels: Mapping[str, str] | None = None,
                annotations: Mapping[str, str] | None = None) -> str:
    """The text to search runbooks with for one alert."""
    labels = labels or {}
    annotations = annotations or {}
    parts = [name]
    parts += [str(v) for k, v in sorted(labels.items())
              if k not in _SKIP_LABELS and v and not _IDENTIFIER.match(str(v))]
    parts += [annotations.get(k, "") for k in ("summary", "description", "message")]
    return "\n".join(p for p in parts if p)


def query_from_line(line: str) -> str:
    """A batch line: plain query text, or one Alertmanager alert as a JSON object."""
    text = line.strip()
    if text.startswith("{"):
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(data, dict) and isinstance(data.get("labels"), dict):
            labels = {str(k): str(v) for k, v in data["labels"].items()}
            notes = data.get("annotations") if isinstance(data.get("annotations"), dict) else {}
            return alert_query(labels.get("alertname", ""), labels,
                               {str(k): str(v) for k, v in (notes or {}).items()})
    return text
