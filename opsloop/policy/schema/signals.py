"""signals.yaml: the improvement signals' thresholds (the schema lives in opsloop.models)."""

from __future__ import annotations

from opsloop.models.signal_rules import ApprovalRule, SignalsPolicy

__all__ = ["ApprovalRule", "SignalsPolicy"]
