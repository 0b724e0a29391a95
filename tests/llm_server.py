"""Helpers for tests of the model path: settings that point at the scripted server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsloop.llm.testing import ScriptedServer
from opsloop.models import Incident
from opsloop.settings import Settings


def model_settings(work: Path, server: ScriptedServer, **extra: Any) -> Settings:
    """The loop on the scripted model; retries back off in milliseconds, not seconds.

    The scripted model checks every runbook hypothesis at once, as a large hosted model
    may, so it gets a large model's context; the 4k default is tested in test_llm_budget.
    """
    values: dict[str, Any] = {
        "work_dir": work, "llm_base_url": server.url, "llm_model": "scripted",
        "llm_retry_initial_seconds": 0.01, "llm_retry_max_seconds": 0.05,
        "llm_timeout_seconds": 5.0, "llm_context_tokens": 32_768, **extra}
    return Settings(**values)


def policy_outcome(incident: Incident) -> dict[str, Any]:
    """Everything policy decided and did for an incident, comparable across runs."""
    cause = incident.root_cause
    return {
        "status": incident.status.value,
        "severity": incident.severity.value if incident.severity else None,
        "root_cause": (cause.category, cause.service) if cause and not incident.novel else None,
        "actions": [c.action.describe() for c in incident.actions],
        "decisions": [(c.decision.outcome.value, c.decision.rule) for c in incident.actions
                      if c.decision is not None],
        "results": [(c.result.action, c.result.status.value) for c in incident.actions
                    if c.result is not None],
        "verified": incident.verification.passed if incident.verification else None,
    }
