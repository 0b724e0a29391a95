"""Prompts live as files beside the agents; outside text goes in only as delimited data.

Untrusted text (alert annotations, log lines, runbooks, tool output, records) is JSON-encoded
inside a `<data>` block with `<` and `>` escaped, so nothing in it can close the block or
open a new one: whatever it says, it arrives as a string value, never as instructions.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "agents" / "prompts"

_BLOCK = re.compile(r'<data kind="(?P<kind>[a-z_]+)" trust="untrusted">\n(?P<body>.*?)\n</data>',
                    re.S)


class PromptError(ValueError):
    """A prompt file is missing or names a value nobody supplied."""


@cache
def _template(name: str) -> Template:
    path = PROMPTS_DIR / f"{name}.md"
    try:
        return Template(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptError(f"prompt {path} cannot be read: {exc.strerror}") from exc


def prompt(name: str, **values: object) -> str:
    """The prompt file `<name>.md` with `$name` placeholders filled."""
    try:
        return _template(name).substitute({k: str(v) for k, v in values.items()}).strip()
    except KeyError as exc:
        raise PromptError(f"prompt {name}.md needs a value for ${exc.args[0]}") from exc


def encode(payload: Any) -> str:
    text = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def data_block(kind: str, payload: Any) -> str:
    """One block of untrusted data: JSON that cannot contain its own delimiter."""
    return f'<data kind="{kind}" trust="untrusted">\n{encode(payload)}\n</data>'


def data_blocks(text: str) -> dict[str, list[Any]]:
    """The decoded blocks in a prompt, by kind (the scripted model and tests read them)."""
    out: dict[str, list[Any]] = {}
    for m in _BLOCK.finditer(text):
        try:
            out.setdefault(m.group("kind"), []).append(json.loads(m.group("body")))
        except json.JSONDecodeError:
            continue
    return out


def trim(text: str, limit: int) -> str:
    """At most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text) - limit} more characters trimmed]"


def _shrink(value: Any, max_str: int, max_items: int) -> Any:
    if isinstance(value, str) and len(value) > max_str:
        return value[:max_str] + f"…[{len(value) - max_str} chars trimmed]"
    if isinstance(value, list):
        kept = [_shrink(v, max_str, max_items) for v in value[:max_items]]
        return kept + ([f"…[{len(value) - max_items} more items trimmed]"]
                       if len(value) > max_items else [])
    if isinstance(value, dict):
        return {k: _shrink(v, max_str, max_items) for k, v in value.items()}
    return value


# Each step shortens strings and lists further; `fit` takes the first that is short enough.
_LADDER = ((400, 8), (160, 4), (60, 2), (24, 1))


def shrink(value: Any, step: int) -> Any:
    """`value` shortened as far as step `step` of the ladder says (0 = least)."""
    max_str, max_items = _LADDER[min(step, len(_LADDER) - 1)]
    return _shrink(value, max_str, max_items)


def fit(payload: Any, limit: int, *, keep_structure: bool = False) -> tuple[Any, bool]:
    """The payload, shortened (long strings, long lists) until its JSON fits `limit` chars.

    Structure survives trimming, so what reaches the model is still well-formed data. When
    even the shortest form is too long, the JSON text itself is cut — or, with
    `keep_structure`, the shortest form is returned over the limit (the caller decides).
    """
    if len(encode(payload)) <= limit:
        return payload, False
    for max_str, max_items in _LADDER:
        smaller = _shrink(payload, max_str, max_items)
        if len(encode(smaller)) <= limit:
            return smaller, True
    if keep_structure:
        return smaller, smaller != payload
    return {"trimmed": trim(encode(payload), max(limit - 60, 40))}, True


def _ids(items: list[Any]) -> list[Any]:
    """What identifies each item: its `id` (or `check`) when it has one."""
    found = [i.get("id", i.get("check")) for i in items if isinstance(i, dict)]
    return [f for f in found if isinstance(f, str | int)]


def _leaf(value: Any) -> Any:
    if isinstance(value, str):
        return _shrink(value, 80, 0)
    if isinstance(value, list):
        ids = _ids(value)
        shown = ids if ids else [v for v in value if not isinstance(v, dict | list)][:3]
        return [_leaf(v) for v in shown[:12]] + ([f"…[{len(value)} items in all]"]
                                                 if len(shown) < len(value) else [])
    if isinstance(value, dict):
        return {k: _shrink(v, 40, 0) for k, v in value.items()
                if not isinstance(v, dict | list)}
    return value


def summarise(payload: Any) -> Any:
    """The payload's outline: its scalar fields (cut short) and, for nested lists, the ids
    of their items — what a model needs to cite or ask again — with the rest counted."""
    if isinstance(payload, list):
        return [summarise(v) for v in payload[:8]] + (
            [f"…[{len(payload) - 8} more items trimmed]"] if len(payload) > 8 else [])
    if isinstance(payload, dict):
        return {k: _leaf(v) for k, v in payload.items()}
    return _leaf(payload)


def fit_blocks(text: str, limit: int | None) -> tuple[str, bool]:
    """`text` with every data block's JSON fitted to `limit` characters (by `fit`), or
    summarised (`summarise`) when `limit` is None.

    Only block bodies change: the words around them and the delimiters stay as they were,
    so a shortened block is still one well-formed, untrusted block of the same kind. A
    block keeps its structure (its ids, keys, first items) even when that is over `limit`.
    """
    changed = False

    def refit(m: re.Match[str]) -> str:
        nonlocal changed
        if limit is not None and len(m.group("body")) <= limit:
            return m.group(0)
        try:
            payload = json.loads(m.group("body"))
        except json.JSONDecodeError:
            payload = m.group("body")
        if limit is None:
            shown = summarise(payload)
            trimmed = encode(shown) != m.group("body")
        else:
            shown, trimmed = fit(payload, limit, keep_structure=True)
        changed = changed or trimmed
        return data_block(m.group("kind"), shown) if trimmed else m.group(0)

    return _BLOCK.sub(refit, text), changed
