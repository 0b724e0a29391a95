"""Incidents stored before ActionCase: four lists joined by action id, read as one case each."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

_LISTS = ("proposals", "decisions", "approvals", "results")


def _get(item: Any, key: str) -> Any:
    return getattr(item, key, None) if isinstance(item, BaseModel) else item.get(key)


def _names(request_id: str, action_id: str) -> bool:
    # The loop always used the action id as the request id; "apr-a-1" names "a-1", "apr-a-10"
    # does not.
    pattern = rf"(?<![A-Za-z0-9]){re.escape(action_id)}(?![A-Za-z0-9])"
    return request_id == action_id or re.search(pattern, request_id) is not None


def _requested_at(timeline: list[Any], action_id: str) -> Any:
    """When guardrails asked a human: the loop's `decision` entry that said needs_approval."""
    for entry in timeline:
        data = _get(entry, "data") or {}
        if (str(_get(entry, "kind")) == "decision" and data.get("action_id") == action_id
                and data.get("outcome") == "needs_approval"):
            return _get(entry, "at")
    return None


def fold_parallel_lists(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the old `proposals`, `decisions`, `approvals`, `results` and
    `verification.rollback_results` folded into `actions`; unchanged when it has none."""
    if not any(key in data for key in _LISTS):
        return data
    data = dict(data)
    proposals, decisions, approvals, results = (list(data.pop(key, None) or []) for key in _LISTS)
    verification = data.get("verification")
    reverts: list[Any] = []
    if isinstance(verification, dict) and "rollback_results" in verification:
        verification = dict(verification)
        reverts = list(verification.pop("rollback_results") or [])
        data["verification"] = verification
    by_id = {_get(d, "action_id"): d for d in decisions}
    ran = {_get(r, "action_id"): r for r in results}
    undone = {_get(r, "action_id"): r for r in reverts}
    cases: dict[str, dict[str, Any]] = {}
    for proposal in proposals:
        action_id = _get(_get(proposal, "action"), "id")
        if action_id in cases:
            continue
        answer = next((a for a in approvals if _names(_get(a, "request_id"), action_id)), None)
        if answer is not None:
            approvals.remove(answer)
        cases[action_id] = {
            "proposal": proposal, "decision": by_id.get(action_id), "approval": answer,
            "requested_at": _requested_at(list(data.get("timeline") or []), action_id),
            "result": ran.get(action_id), "revert": undone.get(action_id),
        }
    data["actions"] = [*data.get("actions", []), *cases.values()]
    return data
