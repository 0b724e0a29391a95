"""Model calls per incident, and the per-incident token budget, shared by parallel specialists."""

from __future__ import annotations

import threading
from collections import defaultdict

from opsloop.models import Incident, ModelCall, ModelUsage


class UsageLedger:
    """Thread-safe: specialists of one incident run in parallel and spend one budget."""

    def __init__(self, tokens_per_incident: int) -> None:
        self.tokens_per_incident = tokens_per_incident
        self._lock = threading.Lock()
        self._calls: dict[str, list[ModelCall]] = defaultdict(list)
        self._seeded: dict[str, int] = {}

    def seed(self, incident_id: str, tokens: int) -> None:
        """Tokens an earlier process already spent on this incident (from its record)."""
        with self._lock:
            self._seeded.setdefault(incident_id, tokens)

    def record(self, incident_id: str, call: ModelCall) -> None:
        with self._lock:
            self._calls[incident_id].append(call)

    def calls(self, incident_id: str) -> list[ModelCall]:
        with self._lock:
            return list(self._calls.get(incident_id, []))

    def spent(self, incident_id: str) -> int:
        with self._lock:
            return self._seeded.get(incident_id, 0) + sum(
                c.total_tokens for c in self._calls.get(incident_id, []))

    def left(self, incident_id: str) -> int:
        return max(0, self.tokens_per_incident - self.spent(incident_id))


def incident_usage(incident: Incident, earlier: ModelUsage, ledger: UsageLedger | None
                   ) -> ModelUsage:
    """Every model call of the incident: recorded before, by its specialists, and by this
    process (the postmortem narrative runs in whichever process finishes the incident)."""
    calls = [c for d in incident.diagnoses for c in d.model_calls]
    calls += ledger.calls(incident.id) if ledger is not None else []
    return earlier.merged(incident.usage.calls).merged(calls)
