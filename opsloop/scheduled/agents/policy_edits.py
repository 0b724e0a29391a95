"""Minimal edits of policy YAML text, for proposals a person reviews as a diff.

No round-trip YAML library is installed (ruamel.yaml is not a dependency), so each edit
changes or inserts the fewest lines it can and keeps every comment. An edit is trusted only
when it means exactly what it says: `apply` parses the file before and after through its
schema and refuses an edit whose result differs from the intended change in any other way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from opsloop.models import DecisionOutcome, Severity
from opsloop.policy.schema import POLICY_FILES


class EditError(ValueError):
    """The text is not shaped as the edit expects; the message says where."""


@dataclass(frozen=True)
class Edit:
    """One change to one policy file: the text edit and the same change on parsed data."""

    file: str  # e.g. remediation.yaml
    describe: str  # what it changes, in the operator's words
    text: Callable[[str], str]
    data: Callable[[dict[str, Any]], None]  # the intended change on the parsed file

    def apply(self, original: str) -> str:
        """The edited text; EditError unless it parses to exactly the intended change."""
        edited = self.text(original)
        schema = POLICY_FILES[self.file][1]
        expected = yaml.safe_load(original)
        self.data(expected)
        want = schema.model_validate(expected).model_dump()
        got = schema.model_validate(yaml.safe_load(edited)).model_dump()
        if want != got:
            raise EditError(f"{self.file}: the text edit for {self.describe!r} does not parse "
                            "to the intended change; no diff proposed")
        return edited


def unified_diff(file: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/policies/{file}", tofile=f"b/policies/{file}"))


# -- locating blocks ----------------------------------------------------------------------

def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block(lines: list[str], header: int) -> int:
    """The end (exclusive) of the block whose header line is `header`: the next content
    line indented no deeper than the header."""
    depth = _indent(lines[header])
    end = header + 1
    for i in range(header + 1, len(lines)):
        if _content(lines[i]) and _indent(lines[i]) <= depth:
            break
        end = i + 1
    while end > header + 1 and not _content(lines[end - 1]):
        end -= 1  # trailing blank lines and comments belong to what follows
    return end


def _find(lines: list[str], pattern: str, start: int = 0, end: int | None = None,
          what: str = "") -> int:
    regex = re.compile(pattern)
    for i in range(start, len(lines) if end is None else end):
        if regex.match(lines[i]):
            return i
    raise EditError(f"{what or pattern} not found")


def _split_comment(value: str) -> tuple[str, str]:
    """`auto   # why` -> ("auto", "   # why"); policy values here never quote a '#'."""
    at = value.find(" #")
    return (value, "") if at < 0 else (value[:at].rstrip(), value[len(value[:at].rstrip()):])


def _entry(lines: list[str], section: str, key: str) -> tuple[int, int]:
    top = _find(lines, rf"^{section}:\s*(#.*)?$", what=f"`{section}:`")
    top_end = _block(lines, top)
    head = _find(lines, rf"^  {re.escape(key)}:", top + 1, top_end, f"{section}.{key}")
    return head, _block(lines, head)


# -- remediation.yaml ---------------------------------------------------------------------

def _flow(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def set_action_outcome(text: str, action_type: str, severity: Severity,
                       outcome: DecisionOutcome | None) -> str:
    """actions.<type>.outcome at `severity` set to `outcome` (None: removed, so the
    severity's ceiling decides). A relaxing edit drops the line's comment: it gave the
    reason for the stricter rule, and the diff shows it to the reviewer."""
    lines = text.splitlines(keepends=True)
    head, end = _entry(lines, "actions", action_type)
    pad = " " * (_indent(lines[head]) + 2)
    try:
        at = _find(lines, rf"^{pad}outcome:", head + 1, end)
    except EditError:
        at = -1
    current: dict[str, str] = {}
    comment, newline, replaced = "", "\n", 1
    if at >= 0:
        raw = lines[at].split(":", 1)[1]
        newline = "\n" if raw.endswith("\n") else ""
        value, comment = _split_comment(raw.rstrip("\n"))
        parsed = yaml.safe_load(value) if value.strip() else None
        if parsed is None:  # a block mapping on the lines below
            sub_end = _block(lines, at)
            parsed = yaml.safe_load("".join(line[len(pad) + 2:] for line in lines[at + 1:sub_end]
                                            if _content(line)))
            replaced = sub_end - at
        if isinstance(parsed, str):
            current = {s.value: parsed for s in Severity}
        elif isinstance(parsed, dict):
            current = {str(k): str(v) for k, v in parsed.items()}
        else:
            raise EditError(f"actions.{action_type}.outcome: unexpected value {value!r}")
    if outcome is None:
        current.pop(severity.value, None)
        comment = ""
    else:
        current[severity.value] = outcome.value
    ordered: dict[str, str] = {
        str(s.value): current[s.value] for s in Severity if s.value in current}
    if not ordered:
        new: list[str] = []
    elif len(ordered) == len(Severity) and len(set(ordered.values())) == 1:
        new = [f"{pad}outcome: {next(iter(ordered.values()))}{comment}{newline}"]
    else:
        new = [f"{pad}outcome: {_flow(ordered)}{comment}{newline}"]
    if at >= 0:
        lines[at:at + replaced] = new
    else:
        risk = [i for i in range(head + 1, end) if re.match(rf"^{pad}risk(_param)?:", lines[i])]
        lines[(risk[-1] if risk else head) + 1:(risk[-1] if risk else head) + 1] = new
    return "".join(lines)


def set_action_notify(text: str, action_type: str, notify: bool) -> str:
    """actions.<type>.notify set to `notify`."""
    lines = text.splitlines(keepends=True)
    head, end = _entry(lines, "actions", action_type)
    pad = " " * (_indent(lines[head]) + 2)
    word = "true" if notify else "false"
    try:
        at = _find(lines, rf"^{pad}notify:", head + 1, end)
    except EditError:
        after = [i for i in range(head + 1, end)
                 if re.match(rf"^{pad}(risk|risk_param|outcome):", lines[i])]
        spot = (after[-1] if after else head) + 1
        lines[spot:spot] = [f"{pad}notify: {word}\n"]
        return "".join(lines)
    _, comment = _split_comment(lines[at].split(":", 1)[1].rstrip("\n"))
    lines[at] = f"{pad}notify: {word}{comment}\n"
    return "".join(lines)


def set_severity_ceiling(text: str, severity: Severity, outcome: DecisionOutcome,
                         notify: bool) -> str:
    """severities.<SEV> set to {outcome, notify}."""
    lines = text.splitlines(keepends=True)
    head, end = _entry(lines, "severities", severity.value)
    if end != head + 1:
        raise EditError(f"severities.{severity.value}: expected a one-line {{outcome, notify}}")
    _, comment = _split_comment(lines[head].split(":", 1)[1].rstrip("\n"))
    word = "true" if notify else "false"
    lines[head] = f"  {severity.value}: {{outcome: {outcome.value}, notify: {word}}}{comment}\n"
    return "".join(lines)


# -- alerts.yaml ----------------------------------------------------------------------------

def set_alert_for(text: str, rule: str, minutes: int) -> str:
    """rules[name=<rule>].for_minutes set to `minutes`."""
    lines = text.splitlines(keepends=True)
    top = _find(lines, r"^rules:\s*(#.*)?$", what="`rules:`")
    top_end = _block(lines, top)
    quoted = rf"""(?:{re.escape(rule)}|"{re.escape(rule)}"|'{re.escape(rule)}')"""
    head = _find(lines, rf"^  - name: {quoted}\s*(#.*)?$", top + 1, top_end, f"rule {rule}")
    end = head + 1
    while end < top_end and not re.match(r"^  - ", lines[end]):
        end += 1
    try:
        at = _find(lines, r"^    for_minutes:", head + 1, end)
    except EditError:
        spot = _find(lines, r"^    threshold:", head + 1, end, f"rule {rule} threshold") + 1
        lines[spot:spot] = [f"    for_minutes: {minutes}\n"]
        return "".join(lines)
    _, comment = _split_comment(lines[at].split(":", 1)[1].rstrip("\n"))
    lines[at] = f"    for_minutes: {minutes}{comment}\n"
    return "".join(lines)


# -- the edits a review proposes ----------------------------------------------------------

def relax_action(action_type: str, severity: Severity) -> Edit:
    """The action type's own needs_approval at `severity` removed, and notify on."""
    def data(d: dict[str, Any]) -> None:
        entry = d["actions"][action_type]
        outcome = entry.get("outcome")
        if isinstance(outcome, str):
            outcome = {s.value: outcome for s in Severity}
        outcome = {str(k): v for k, v in (outcome or {}).items() if str(k) != severity.value}
        if outcome:
            entry["outcome"] = outcome
        else:
            entry.pop("outcome", None)
        entry["notify"] = True

    return Edit("remediation.yaml",
                f"{action_type} at {severity}: auto with notify (was needs_approval)",
                lambda t: set_action_notify(set_action_outcome(t, action_type, severity, None),
                                            action_type, True),
                data)


def relax_ceiling(severity: Severity) -> Edit:
    def data(d: dict[str, Any]) -> None:
        d["severities"][severity.value] = {"outcome": "auto", "notify": True}

    return Edit("remediation.yaml", f"every action at {severity}: auto with notify",
                lambda t: set_severity_ceiling(t, severity, DecisionOutcome.AUTO, True), data)


def tighten_action(action_type: str, severity: Severity) -> Edit:
    def data(d: dict[str, Any]) -> None:
        entry = d["actions"][action_type]
        outcome = entry.get("outcome")
        if isinstance(outcome, str):
            outcome = {s.value: outcome for s in Severity}
        outcome = {str(k): v for k, v in (outcome or {}).items()}
        outcome[severity.value] = "needs_approval"
        entry["outcome"] = outcome

    return Edit("remediation.yaml", f"{action_type} at {severity}: needs_approval (was auto)",
                lambda t: set_action_outcome(t, action_type, severity,
                                             DecisionOutcome.NEEDS_APPROVAL),
                data)


def lengthen_alert(rule: str, minutes: int) -> Edit:
    def data(d: dict[str, Any]) -> None:
        for entry in d["rules"]:
            if entry.get("name") == rule:
                entry["for_minutes"] = minutes

    return Edit("alerts.yaml", f"alert {rule}: for_minutes {minutes}",
                lambda t: set_alert_for(t, rule, minutes), data)
