"""Read policies/*.yaml, validate every file, and report each problem where a person can fix it."""

from __future__ import annotations

import logging
import re
import types
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from opsloop.policy.checks import semantic_problems
from opsloop.policy.problems import PolicyError, PolicyProblem, ProblemLevel, display_path
from opsloop.policy.safety import accept_unsafe
from opsloop.policy.schema import POLICY_FILES, Policies, PolicyFile

Loc = tuple[str | int, ...]
log = logging.getLogger("opsloop.policy")


def load_policies(directory: Path, *, allow_unsafe: bool = False) -> Policies:
    """Every policy file, validated; raises `PolicyError` listing every error found.

    Unsafe settings (opsloop/policy/safety) are errors too, unless `allow_unsafe`, the
    operator's explicit opt-in (settings.allow_unsafe_policies), turns them into warnings.
    """
    problems, parsed = _read_all(Path(directory))
    if allow_unsafe:
        problems = accept_unsafe(problems)
    if any(p.level is ProblemLevel.ERROR for p in problems):
        raise PolicyError(problems)
    for problem in problems:
        if problem.allowed:  # the loop runs them, but never silently
            log.warning("running with an unsafe policy (OPSLOOP_ALLOW_UNSAFE_POLICIES): %s",
                        problem)
    return Policies(
        source_dir=Path(directory),
        warnings=[str(p) for p in problems],
        **parsed,
    )


def check_policies(directory: Path, *, allow_unsafe: bool = False) -> list[PolicyProblem]:
    """All problems (errors and warnings) in the policy directory, for `opsloop policy check`.

    With `allow_unsafe`, unsafe settings are reported as warnings marked `allowed`.
    """
    problems, _ = _read_all(Path(directory))
    return accept_unsafe(problems) if allow_unsafe else problems


def _read_all(directory: Path) -> tuple[list[PolicyProblem], dict[str, Any]]:
    if not directory.is_dir():
        problem = PolicyProblem(
            file=display_path(directory),
            field="",
            message="policy directory not found: point policies_dir at the folder "
            "holding health.yaml, severity.yaml, ...",
        )
        return [problem], {}
    problems: list[PolicyProblem] = []
    parsed: dict[str, Any] = {}
    lines: dict[str, dict[Loc, int]] = {}
    for filename, (attr, schema) in POLICY_FILES.items():
        file_problems, model, lines[display_path(directory / filename)] = _read_file(
            directory / filename, schema
        )
        problems.extend(file_problems)
        if model is not None:
            parsed[attr] = model
    for problem in semantic_problems(directory, parsed):
        where = lines.get(problem.file, {}).get(_parse_field(problem.field))
        problems.append(replace(problem, line=where) if where else problem)
    return problems, parsed


def _read_file(
    path: Path, schema: type[PolicyFile]
) -> tuple[list[PolicyProblem], PolicyFile | None, dict[Loc, int]]:
    """Problems, the model when valid, and the line of every key (for later messages)."""
    shown = display_path(path)
    if not path.is_file():
        return (
            [
                PolicyProblem(
                    shown,
                    "",
                    f"file missing: create {path.name} (every policy "
                    "area needs its file, see the ones shipped in policies/)",
                )
            ],
            None,
            {},
        )
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        lines, duplicates = _line_map(text)
    except yaml.YAMLError as exc:
        return [_yaml_problem(shown, exc)], None, {}
    problems = [
        PolicyProblem(
            shown,
            _format_loc(loc),
            "key appears twice; YAML keeps only the last one: remove or merge the duplicate",
            line=line,
        )
        for loc, line in duplicates
    ]
    if not isinstance(data, dict):
        problems.append(
            PolicyProblem(
                shown,
                "",
                "expected a mapping of keys (starting with `version: 1`) at the top of the file",
                value=data,
            )
        )
        return problems, None, lines
    try:
        model = schema.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(_pydantic_problem(shown, err, schema, lines))
        return problems, None, lines
    return problems, model, lines


def _yaml_problem(file: str, exc: yaml.YAMLError) -> PolicyProblem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return PolicyProblem(file, "", f"YAML syntax error: {problem}")
    return PolicyProblem(
        file,
        "",
        f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}; "
        "check indentation, quoting and colons there",
        line=mark.line + 1,
    )


def _line_map(text: str) -> tuple[dict[Loc, int], list[tuple[Loc, int]]]:
    """Line of every key and list item by path, and keys written twice in one mapping."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, int]] = []

    def walk(node: yaml.Node, loc: Loc) -> None:
        lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    duplicates.append(((*loc, key), key_node.start_mark.line + 1))
                seen.add(key)
                walk(value_node, (*loc, key))
                lines[(*loc, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))

    if root is not None:
        walk(root, ())
    return lines, duplicates


_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parse_field(field: str) -> Loc:
    """`rules[3].annotations` -> ("rules", 3, "annotations"), the inverse of _format_loc."""
    return tuple(int(index) if index else name for name, index in _FIELD_PART.findall(field))


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _pydantic_problem(
    file: str, err: ErrorDetails, schema: type[BaseModel], lines: dict[Loc, int]
) -> PolicyProblem:
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    field = _format_loc(loc)
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    kind = err["type"]
    if kind == "missing":
        return PolicyProblem(file, field, "required field is missing: add it", line=line)
    if kind == "extra_forbidden":
        allowed = _allowed_fields(schema, loc[:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return PolicyProblem(
            file, field, f"unknown field (a typo?){hint}", value=err["input"], line=line
        )
    return PolicyProblem(file, field, _friendly(err), value=err["input"], line=line)


_MESSAGES = {
    "float_parsing": "not a number",
    "float_type": "not a number",
    "int_parsing": "not a whole number",
    "int_type": "not a whole number",
    "int_from_float": "not a whole number",
    "bool_parsing": "not true or false",
    "bool_type": "not true or false",
    "string_type": "not text: quote it",
    "list_type": "should be a list (- item, or [a, b])",
    "dict_type": "should be a mapping (key: value)",
    "model_type": "should be a mapping (key: value)",
    "model_attributes_type": "should be a mapping (key: value)",
}


def _friendly(err: ErrorDetails) -> str:
    if err["type"] in _MESSAGES:
        return _MESSAGES[err["type"]]
    msg = err["msg"]
    for prefix, replacement in (("Value error, ", ""), ("Input should", "should")):
        if msg.startswith(prefix):
            msg = replacement + msg[len(prefix) :]
    return msg


def _allowed_fields(schema: type[BaseModel], loc: Loc) -> list[str]:
    """The field names a mapping at `loc` accepts, by walking the schema's annotations."""
    current: Any = schema
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    model = _model_in(current)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    model = _model_in(annotation)
    if model is not None and isinstance(part, str):
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and isinstance(part, int) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is typing.Annotated and args:
        return _step(args[0], part)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _step(arg, part)
            if found is not None:
                return found
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


__all__ = ["PolicyError", "PolicyProblem", "check_policies", "load_policies"]
