"""The runbook check language: `expect` comparisons, `bind` paths and `{var}` templates.

Runbooks are text from a git repository, so nothing in them is ever evaluated as Python.
An expectation is a tiny grammar parsed here:

    expect   := clause (("and" | "or") clause)*      "and" binds tighter than "or"
    clause   := path op literal
    op       := > | >= | < | <= | == | != | contains
    path     := name ("." name | "." index)*          e.g. latest.age_minutes, samples.0
    literal  := number | 'text' | "text" | true | false | null | bare-word | {template}

A literal may be a template such as `{deploy_age + 2}`: it is filled from values bound by
earlier checks before the expectation is parsed ("errors began after the deploy").
A clause whose field is missing, null or of the wrong type is false, never an error.
Templates are `{name}` or `{name OP operand}`, OP one of + - * /, the operand a number or
another bound name (`{replicas * 2}`, `{replicas * surge}`).
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ExpectError(ValueError):
    """An expectation that does not parse; the message says where."""


class Unbound(KeyError):
    """A template names a variable no check has bound."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"variable {self.name!r} is not bound"


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'[^']*'|"[^"]*")
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])
      | (?P<op>>=|<=|==|!=|>|<)
      | (?P<word>[A-Za-z_][\w-]*(?:\.[\w-]+)*)
    )""",
    re.VERBOSE,
)


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return b.lower() in a.lower()
    return isinstance(a, list | tuple) and b in a


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne, "contains": _contains,
}
_LITERAL_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None, "none": None}

_MISSING = object()


def resolve(data: Any, path: str) -> Any:
    """Follow a dotted path through dicts and lists; a missing step gives None."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, Mapping):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list | tuple) and part.lstrip("-").isdigit():
            idx = int(part)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else _MISSING
        else:
            cur = _MISSING
        if cur is _MISSING:
            return None
    return cur


@dataclass(frozen=True)
class Clause:
    path: str
    op: str
    value: Any

    def holds(self, data: Mapping[str, Any]) -> bool:
        actual = resolve(data, self.path)
        if actual is None and self.value is not None:
            return False
        numeric = (int, float)
        if self.op in {">", ">=", "<", "<="} and not (
            isinstance(actual, numeric) and isinstance(self.value, numeric)
        ):
            return False
        try:
            return bool(_OPS[self.op](actual, self.value))
        except TypeError:
            return False

    def __str__(self) -> str:
        return f"{self.path} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Expectation:
    """Disjunction of conjunctions of clauses."""

    text: str
    any_of: tuple[tuple[Clause, ...], ...]

    def holds(self, data: Mapping[str, Any]) -> bool:
        return any(all(c.holds(data) for c in group) for group in self.any_of)

    def fields(self) -> list[str]:
        return [c.path for group in self.any_of for c in group]


def _literal(kind: str, text: str) -> Any:
    if kind == "str":
        return text[1:-1]
    if kind == "num":
        value = float(text)
        return int(value) if value.is_integer() and "." not in text and "e" not in text else value
    return _LITERAL_WORDS.get(text.lower(), text)


@functools.lru_cache(maxsize=1024)
def parse_expect(text: str) -> Expectation:
    """Parse an `expect` string; raises ExpectError naming the offending position. Cached:
    a runbook's checks are read once per hypothesis and specialist, and the result is frozen."""
    toks: list[tuple[str, str, int]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpectError(f"cannot read {text[pos:]!r} at position {pos} of {text!r}")
        kind = m.lastgroup or ""
        toks.append((kind, m.group(kind), pos))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not toks:
        raise ExpectError("expectation is empty")
    groups: list[tuple[Clause, ...]] = []
    current: list[Clause] = []
    i = 0
    while True:
        if i + 3 > len(toks):
            raise ExpectError(
                f"incomplete comparison at the end of {text!r}; want `field op value`")
        (fk, field, fpos), (ok, op, opos), (vk, val, vpos) = toks[i : i + 3]
        if fk != "word" or field.lower() in {"and", "or", "contains"}:
            raise ExpectError(
                f"expected a field name at position {fpos} of {text!r}, got {field!r}")
        if not (ok == "op" or (ok == "word" and op == "contains")):
            raise ExpectError(f"expected an operator at position {opos} of {text!r}, got {op!r}")
        if vk == "op":
            raise ExpectError(f"expected a value at position {vpos} of {text!r}, got {val!r}")
        current.append(Clause(field, op, _literal(vk, val)))
        i += 3
        if i == len(toks):
            break
        kind, joiner, jpos = toks[i]
        if kind != "word" or joiner.lower() not in {"and", "or"}:
            raise ExpectError(
                f"expected `and` or `or` at position {jpos} of {text!r}, got {joiner!r}")
        if joiner.lower() == "or":
            groups.append(tuple(current))
            current = []
        i += 1
    groups.append(tuple(current))
    return Expectation(text=text, any_of=tuple(groups))


_TEMPLATE = re.compile(
    r"\{\s*([A-Za-z_]\w*)\s*(?:([-+*/])\s*(\d+(?:\.\d+)?|[A-Za-z_]\w*))?\s*\}"
)
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}


def template_vars(template: Any) -> set[str]:
    """Names a template refers to (strings only; other values are literals)."""
    if not isinstance(template, str):
        return set()
    names = set()
    for name, _, operand in _TEMPLATE.findall(template):
        names.add(name)
        if operand and not operand[0].isdigit():
            names.add(operand)
    return names


def fill_expect(text: str, variables: Mapping[str, Any]) -> str:
    """Substitute `{var}` literals in an expectation; raises Unbound."""
    return _TEMPLATE.sub(lambda m: _literal_text(_value(m, variables)), text)


def check_expect(text: str) -> set[str]:
    """Validate an expectation with placeholders; return the variables it needs."""
    parse_expect(_TEMPLATE.sub("0", text))
    return template_vars(text)


def _literal_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "") + "'"


def _number(name: str, variables: Mapping[str, Any]) -> float:
    value = variables.get(name)
    if value is None:
        raise Unbound(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Unbound(f"{name} (not a number: {value!r})")
    return float(value)


def _value(match: re.Match[str], variables: Mapping[str, Any]) -> Any:
    name, op, operand = match.group(1), match.group(2), match.group(3)
    if name not in variables or variables[name] is None:
        raise Unbound(name)
    value = variables[name]
    if not op:
        return value
    left = _number(name, variables)
    right = float(operand) if operand[0].isdigit() else _number(operand, variables)
    if op == "/" and right == 0:
        raise Unbound(f"{operand} (division by zero)")
    result = _ARITH[op](left, right)
    # Counts such as replicas stay whole. Round to nearest rather than up: a measured ratio of
    # 3.02 on 6 replicas means 18, not 19.
    if isinstance(value, int):
        return max(math.floor(result + 0.5), 0)
    return round(result, 4)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Fill a template. A template that is exactly one `{...}` keeps the value's type."""
    if not isinstance(template, str):
        return template
    whole = _TEMPLATE.fullmatch(template.strip())
    if whole:
        return _value(whole, variables)
    return _TEMPLATE.sub(lambda m: _text(_value(m, variables)), template)


def render_lenient(template: str, variables: Mapping[str, Any]) -> str:
    """Fill a human-readable template, leaving `?` where a variable is unbound."""

    def one(m: re.Match[str]) -> str:
        try:
            return _text(_value(m, variables))
        except Unbound:
            return "?"

    return _TEMPLATE.sub(one, template)
