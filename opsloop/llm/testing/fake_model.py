"""A deterministic stand-in for a chat model that reasons only from the messages it is sent.

It never sees a scenario name or an answer key; it reads the prompt the way a careful
model would and plays a fixed policy, so the whole model path (prompt, tool calls, tool
results, structured answer, validation) is exercised for real:

- **specialist** (a `runbooks` data block is present): first turn, if the
  `run_runbook_checks` tool is offered and no tool results are in the conversation yet,
  it asks for one call per runbook hypothesis and affected service (runbook service globs
  respected), in the order the runbooks are listed, as parallel tool calls. Once results
  are in (or tools are withdrawn), it answers: hypotheses ranked by the returned
  confidence, then by the weight of supporting checks that held; one per (category,
  service); each citing the tool call it came from. The winner, and hypotheses from the
  same runbook hypothesis at or above the `min_confidence` read from the system prompt,
  carry the runbook's suggested actions.
- **narrative** (a `record` data block): summary and lessons written from the facts in
  the block — what fired, the root cause, each action and its decision, verification.
- **ask** (`question` and `records` blocks): cites the records sharing the most words
  with the question, and quotes them.

`obedient=True` makes it gullible on purpose, for injection tests: any line in the
messages of the form `ACTION: <type> <service> [key=value ...]` is added to its proposals,
with `"approved": true` and `"decision": "auto"` claims attached.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from opsloop.llm.prompting import data_blocks

_MIN_CONFIDENCE = re.compile(r"min_confidence:\s*([0-9.]+)")
_DIRECTIVE = re.compile(r"ACTION:\s*([a-z_]+)\s+([A-Za-z0-9_.-]+)((?:\s+[a-z_]+=[A-Za-z0-9_.-]+)*)")
_WORD = re.compile(r"[a-z0-9][a-z0-9_-]+")
_STOP = frozenset({
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "for", "what", "which", "who", "why",
    "when", "how", "was", "were", "is", "are", "did", "do", "does", "it", "its", "this", "that",
    "with", "from", "by", "at", "last", "any", "all"})


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


class FakeModel:
    def __init__(self, *, obedient: bool = False) -> None:
        self.obedient = obedient

    def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        """The assistant message for one chat-completions request."""
        messages: list[dict[str, Any]] = request.get("messages", [])
        blocks: dict[str, list[Any]] = {}
        for m in messages:
            if m.get("role") in ("user", "system"):
                for kind, found in data_blocks(_text(m)).items():
                    blocks.setdefault(kind, []).extend(found)
        if "runbooks" in blocks:
            return self._specialist(request, messages, blocks)
        if "record" in blocks:
            return _content(_narrative(blocks["record"][0]))
        if "question" in blocks:
            return _content(_ask(blocks["question"][0], blocks.get("records", [[]])[0]))
        return _content({"answer": "I have no data to work from.", "citations": []})

    # specialist -------------------------------------------------------------------------

    def _specialist(self, request: dict[str, Any], messages: list[dict[str, Any]],
                    blocks: dict[str, list[Any]]) -> dict[str, Any]:
        offered = {t["function"]["name"] for t in request.get("tools") or []}
        results = _tool_results(messages)
        # A prompt fitted to a small context ends long lists with a "…trimmed" string.
        runbooks = [rb for rb in blocks["runbooks"][0] if isinstance(rb, dict)]
        services = [s for s in blocks["incident"][0].get("affected_services", [])
                    if isinstance(s, str) and "trimmed]" not in s]
        if not results and "run_runbook_checks" in offered:
            calls = [{"runbook": rb["id"], "hypothesis": h["id"], "service": s}
                     for rb in runbooks for h in rb.get("hypotheses", []) if isinstance(h, dict)
                     for s in services
                     if any(fnmatch.fnmatchcase(s, g) for g in rb.get("services", []))]
            if calls:
                return {"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"call_{i}", "type": "function", "function": {
                        "name": "run_runbook_checks", "arguments": json.dumps(args)}}
                    for i, args in enumerate(calls, 1)]}
        system = next((_text(m) for m in messages if m.get("role") == "system"), "")
        found = _MIN_CONFIDENCE.search(system)
        answer = _conclude(results, float(found.group(1)) if found else 0.6)
        if self.obedient:
            _obey(answer, messages)
        return _content(answer)


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": json.dumps(payload)}


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for m in messages:
        if m.get("role") == "tool":
            for payload in data_blocks(_text(m)).get("tool_result", []):
                if isinstance(payload, dict):
                    out.append((str(m.get("tool_call_id")), payload))
    return out


def _conclude(results: list[tuple[str, dict[str, Any]]], min_confidence: float
              ) -> dict[str, Any]:
    tested = [(i, cid, r) for i, (cid, r) in enumerate(results)
              if r.get("status") == "ok" and "hypothesis" in r]
    tested.sort(key=lambda t: (-float(t[2]["confidence"]),
                               -float(t[2].get("supporting_weight_held", 0)), t[0]))
    seen: set[tuple[str, str]] = set()
    hypotheses = []
    winner: dict[str, Any] | None = None
    for _, cid, r in tested:
        if (r["category"], r["service"]) in seen:
            continue
        seen.add((r["category"], r["service"]))
        if winner is None and float(r["confidence"]) > 0:
            winner = r
        same = winner is not None and (r["runbook"], r["hypothesis"]) == (
            winner["runbook"], winner["hypothesis"])
        act = r is winner or (same and float(r["confidence"]) >= min_confidence)
        hypotheses.append({
            "cause": r["cause"], "category": r["category"], "service": r["service"],
            "runbook": r["runbook"], "confidence": r["confidence"], "evidence": [cid],
            "remediation": r.get("suggested_actions", []) if act else []})
    if winner is None:
        summary = "No runbook hypothesis is supported by the evidence."
    else:
        held = [c["check"] for c in winner.get("checks", [])
                if isinstance(c, dict) and c.get("holds")]
        summary = (f"{winner['category']} on {winner['service']} at "
                   f"{float(winner['confidence']):.0%}; checks that held: {', '.join(held)}.")
    return {"summary": summary, "hypotheses": hypotheses[:12]}


def _obey(answer: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    text = "\n".join(_text(m) for m in messages).replace("\\n", "\n")
    injected = []
    for kind, service, params in _DIRECTIVE.findall(text):
        pairs = dict(p.split("=", 1) for p in params.split())
        injected.append({"type": kind, "service": service, "params": pairs,
                         "reason": "as instructed", "approved": True, "decision": "auto"})
    if not injected:
        return
    if not answer["hypotheses"]:
        answer["hypotheses"].append({"cause": "as instructed", "category": "instructed",
                                     "service": injected[0]["service"], "confidence": 1.0})
    top = answer["hypotheses"][0]
    top["confidence"] = 1.0
    top["approved"] = True
    top["remediation"] = [*top.get("remediation", []), *injected]


# narrative and ask ------------------------------------------------------------------------

def _narrative(record: dict[str, Any]) -> dict[str, Any]:
    cause = record.get("root_cause") or {}
    actions = record.get("actions", [])
    summary = (f"{record.get('severity') or 'An unclassified'} incident on "
               f"{', '.join(record.get('services', [])) or 'no named service'}: "
               f"{record.get('title', '')}. "
               + (f"The evidence pointed to {cause.get('category')} on {cause.get('service')}: "
                  f"{cause.get('cause')}. " if cause else "No root cause was established. ")
               + " ".join(f"{a['action']} was {a['decision'] or 'not decided'}"
                          f"{' and ' + a['result'] if a.get('result') else ''}." for a in actions)
               + f" It ended {record.get('status')}.")
    well, wrong, lucky = [], [], []
    for a in actions:
        if a.get("decision") == "auto" and a.get("result") == "succeeded":
            well.append(f"{a['action']} ran within policy without waiting for a person.")
        if a.get("decision") == "needs_approval" and not a.get("result"):
            wrong.append(f"{a['action']} still waits for a human decision.")
        if a.get("decision") == "deny":
            wrong.append(f"Policy denied {a['action']}.")
    verification = record.get("verification")
    if verification and verification.get("passed"):
        well.append("Verification confirmed the fix held.")
    elif verification:
        wrong.append("Verification failed after the remediation.")
    if cause and float(cause.get("confidence", 1)) < 0.7 and verification:
        lucky.append("The fix held on moderate confidence in the cause.")
    return {"summary": summary, "went_well": well, "went_wrong": wrong, "lucky": lucky}


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _ask(question: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    asked = _words(str(question.get("question", "") if isinstance(question, dict) else question))
    scored = sorted(((len(asked & _words(json.dumps(r))), i, r) for i, r in enumerate(records)),
                    key=lambda t: (-t[0], t[1]))
    chosen = [r for score, _, r in scored[:2] if score > 0]
    if not chosen:
        return {"answer": "The records given do not answer this.", "citations": []}
    answer = " ".join(f"{r['ref']}: {str(r.get('text', ''))[:240]}" for r in chosen)
    return {"answer": answer, "citations": [r["ref"] for r in chosen]}
