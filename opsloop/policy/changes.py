"""A human's modification of a waiting action, checked against policy before it is recorded.

`opsloop modify --set replicas=abc` (or an API body with `nan`, `-5`, `1e400`, an unknown key)
must be refused with the key and the allowed range, and leave the approval pending: nothing
is recorded, nobody is paged. The guardrails still re-decide the modified action in the graph;
this is the same parameter check, run first so a typo never consumes the approval.
"""

from __future__ import annotations

import math

from opsloop.models import ParamValue, RemediationAction
from opsloop.policy.guardrails import param_problem
from opsloop.policy.schema import ParamSpec, Policies


class InvalidChange(ValueError):
    """A modification that names an unknown parameter or a value outside its bounds."""


def allowed_range(spec: ParamSpec) -> str:
    """`int from 1 to 500`, `number ≥ 0`, `text`: what a person may write for a parameter."""
    kind = {"int": "a whole number", "number": "a number", "string": "text",
            "bool": "true or false"}[spec.type]
    if spec.min is not None and spec.max is not None:
        return f"{kind} from {spec.min:g} to {spec.max:g}"
    if spec.min is not None:
        return f"{kind} of at least {spec.min:g}"
    if spec.max is not None:
        return f"{kind} of at most {spec.max:g}"
    return kind


def check_changes(
    action: RemediationAction, changes: dict[str, object], policies: Policies
) -> dict[str, ParamValue]:
    """The changes, typed, when every key is a parameter of the action and every value is
    within its bounds in remediation.yaml; else InvalidChange naming the first problem."""
    if not changes:
        raise InvalidChange("a modification needs at least one KEY=VALUE change")
    entry = policies.remediation.actions.get(action.type)
    specs = entry.params if entry is not None else {}
    checked: dict[str, ParamValue] = {}
    for key, value in changes.items():
        spec = specs.get(key)
        if spec is None:
            allowed = ", ".join(sorted(specs)) or "none"
            raise InvalidChange(
                f"{key}: {action.type} has no parameter {key!r} "
                f"(remediation.yaml:actions.{action.type}.params allows: {allowed})")
        typed = _coerce(value, spec)
        if typed is None:
            raise InvalidChange(f"{key}={value}: must be {allowed_range(spec)}")
        problem = param_problem(typed, spec)
        if problem is not None:
            raise InvalidChange(
                f"{key}={value} {problem[1]}: must be {allowed_range(spec)} "
                f"(remediation.yaml:actions.{action.type}.params.{key})")
        checked[key] = typed
    return checked


def _coerce(value: object, spec: ParamSpec) -> ParamValue | None:
    """The value as the spec's type: text from a command line is read as the parameter's
    type (`to_version=1.10` stays text, `replicas=12` becomes a whole number); None when it
    cannot be, or when a number is not finite."""
    if spec.type == "string":
        return value if isinstance(value, str) else None
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return None
    if isinstance(value, bool):
        return None
    number: int | float
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                return None
    else:
        return None
    if isinstance(number, int):
        return number if abs(number) <= 2**53 else None  # beyond exact floats: no amount
    if not math.isfinite(number):
        return None
    if spec.type == "int":
        if not float(number).is_integer():
            return number  # param_problem names it: not a whole number
        return int(number)
    return number
