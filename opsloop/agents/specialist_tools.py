"""The tools a specialist's model may call: its own toolbox tools, and its runbooks' checks.

`run_runbook_checks` runs one runbook hypothesis's checks on one service through the same
toolbox (same allow-list, budget and cache), binding values between checks exactly as the
offline reasoner does, and reports each check, the score and the runbook's suggested
actions. The model decides which hypotheses to test and what to make of the results.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from opsloop.agents.reasoner import evaluate, fill_remediation
from opsloop.llm.toolloop import Tool, ToolHandler
from opsloop.models import Evidence, ToolResult
from opsloop.runbooks.format import Runbook
from opsloop.tools.toolbox import Toolbox

_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
RUNBOOK_TOOL = "run_runbook_checks"


def tool_payload(result: ToolResult) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": result.status.value, "summary": result.summary}
    if result.data:
        payload["data"] = result.data
    if result.error:
        payload["error"] = result.error
    return payload


def toolbox_tools(toolbox: Toolbox) -> list[Tool]:
    """The specialist's allowed toolbox tools, typed from the toolbox's own description."""
    tools = []
    for d in toolbox.describe():
        props = {p: {"type": _JSON_TYPES.get(spec["type"], "string"),
                     **({"default": spec["default"]} if "default" in spec else {})}
                 for p, spec in d["parameters"].items()}
        required = [p for p, spec in d["parameters"].items() if spec["required"]]
        name = str(d["name"])
        tools.append(Tool(
            name=name, description=str(d["description"]),
            parameters={"type": "object", "properties": props, "required": required},
            handler=_caller(toolbox, name)))
    return tools


def _caller(toolbox: Toolbox, name: str) -> ToolHandler:
    def call(args: dict[str, Any]) -> dict[str, Any]:
        return tool_payload(toolbox.call(name, args))
    return call


def evidence_payload(e: Evidence) -> dict[str, Any]:
    return {"check": e.check, "description": e.description, "tool": e.tool, "args": e.args,
            "status": e.status.value, "observed": e.observed, "expectation": e.expectation,
            "holds": e.holds, "weight": e.weight}


def runbook_tool(runbooks: list[Runbook], toolbox: Toolbox) -> Tool:
    by_id = {rb.id: rb for rb in runbooks}

    def run(args: dict[str, Any]) -> dict[str, Any]:
        rb = by_id.get(str(args.get("runbook", "")))
        if rb is None:
            return {"status": "error", "error": f"runbook {args.get('runbook')!r} was not "
                    f"retrieved for this incident; choose from {', '.join(sorted(by_id))}"}
        spec = next((h for h in rb.hypotheses if h.id == args.get("hypothesis")), None)
        if spec is None:
            return {"status": "error", "error": f"runbook {rb.id} has no hypothesis "
                    f"{args.get('hypothesis')!r}; it has "
                    f"{', '.join(h.id for h in rb.hypotheses) or 'none'}"}
        service = args.get("service")
        if not isinstance(service, str) or not service:
            return {"status": "error", "error": "service must be a service name"}
        if not rb.applies_to(service):
            return {"status": "error", "error": f"runbook {rb.id} does not apply to {service} "
                    f"(it covers {', '.join(rb.services)})"}
        scored = evaluate(spec, rb, service, toolbox)
        h = scored.hypothesis
        return {"status": "ok", "runbook": rb.id, "hypothesis": spec.id,
                "category": h.category, "cause": h.cause, "service": h.service,
                "confidence": h.confidence, "supporting_weight_held": scored.satisfied,
                "checks": [evidence_payload(e) for e in h.evidence],
                # filled exactly as the offline reasoner fills them; unfillable ones left out
                "suggested_actions": [asdict(f) for f in
                                      fill_remediation(spec, scored.variables)[0]]}

    return Tool(
        name=RUNBOOK_TOOL,
        description="Run one runbook hypothesis's diagnostic checks on one service: each "
                    "check's observation and whether it holds, the confidence score, and the "
                    "runbook's suggested actions with values filled in.",
        parameters={"type": "object", "required": ["runbook", "hypothesis", "service"],
                    "properties": {"runbook": {"type": "string", "enum": sorted(by_id)},
                                   "hypothesis": {"type": "string"},
                                   "service": {"type": "string"}}},
        handler=run)
