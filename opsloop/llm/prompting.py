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


def fit(payload: Any, limit: int) -> tuple[Any, bool]:
    """The payload, shortened (long strings, long lists) until its JSON fits `limit` chars.

    Structure survives trimming, so what reaches the model is still well-formed data.
    """
    if len(encode(payload)) <= limit:
        return payload, False
    for max_str, max_items in ((400, 8), (160, 4), (60, 2), (24, 1)):
        smaller = _shrink(payload, max_str, max_items)
        if len(encode(smaller)) <= limit:
            return smaller, True
    return {"trimmed": trim(encode(payload), max(limit - 60, 40))}, True
