"""Reading a model's final answer into a pydantic model, and asking once for a repair."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_MAX_ERRORS = 6


class InvalidOutput(ValueError):
    """The answer is not JSON, or not the JSON the schema wants; says what is wrong."""


def first_json_object(text: str) -> str:
    """The first balanced {...} in the text: servers without JSON mode wrap it in prose/fences."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i + 1]
        start = text.find("{", start + 1)
    raise InvalidOutput("the answer contains no JSON object")


def parse_output(text: str, schema: type[T]) -> T:
    """Validate the model's answer; raises InvalidOutput naming each bad field."""
    if not text.strip():
        raise InvalidOutput("the answer is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = json.loads(first_json_object(text))
        except json.JSONDecodeError as exc:
            raise InvalidOutput(f"the answer is not valid JSON: {exc.msg} at char {exc.pos}"
                                ) from exc
    if not isinstance(data, dict):
        raise InvalidOutput(f"the answer must be a JSON object, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                    for e in exc.errors()[:_MAX_ERRORS]]
        raise InvalidOutput("; ".join(problems)) from exc


def _untitled(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _untitled(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def schema_text(schema: type[BaseModel]) -> str:
    """The JSON schema, compact, for prompts (servers without response_format need it).

    Titles go: they repeat the field names and cost tokens on every call.
    """
    return json.dumps(_untitled(schema.model_json_schema()), separators=(",", ":"))
