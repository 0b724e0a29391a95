"""Scoring a scheduled agent's case: each line of its answer key is one check.

Findings are matched on every run's full analysis (kind and subject globs, level, numbers
in a range); actions on the actuator's own log (what really ran, when); approvals and policy
decisions on the change records; flags on production at the end. A check that fails says
what was seen instead, so a report can show where the agent went wrong.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from opsloop.agents.signals import read_record
from opsloop.evals.cases import AgentSpec, FindingSpec, lookup
from opsloop.evals.driver import CaseRun
from opsloop.models import DecisionOutcome

MAX_SEEN = 4  # near misses a failed check names


@dataclass
class AgentCheck:
    """One line of an agent case's answer key, judged."""

    check: str
    ok: bool
    detail: str = ""


def _first_seen(spec: FindingSpec, run: CaseRun) -> int | None:
    """The simulated minute of the first run whose analysis had a matching finding."""
    return next((seen.minute for seen in run.agent_runs
                 if any(spec.matches(f) for f in seen.findings)), None)


def _near(spec: FindingSpec, run: CaseRun) -> str:
    """What the runs found of the same kind (or anything, when nothing of that kind)."""
    found = [f for seen in run.agent_runs for f in seen.findings]
    alike = [f for f in found if fnmatch.fnmatch(str(f.get("kind")), spec.kind)] or found
    names = []
    for f in alike:
        data = f.get("data") or {}
        numbers = ", ".join(f"{k}={lookup(data, k)}" for k in spec.data
                            if lookup(data, k) is not None)
        name = f"{f.get('kind')} {f.get('subject')} ({f.get('level')}" + (
            f"; {numbers})" if numbers else ")")
        if name not in names:
            names.append(name)
    return "seen: " + ("; ".join(names[:MAX_SEEN]) if names else "no findings")


def _findings(spec: AgentSpec, run: CaseRun) -> list[AgentCheck]:
    out = []
    for want in spec.findings:
        minute = _first_seen(want, run)
        ok = minute is not None and (want.within_minutes is None
                                     or minute <= want.within_minutes)
        detail = (f"first seen at minute {minute}" if minute is not None else _near(want, run))
        out.append(AgentCheck(f"finding {want.describe()}"
                              + (f" within {want.within_minutes} min"
                                 if want.within_minutes is not None else ""), ok, detail))
    for never in spec.absent:
        hits = [f"{f.get('kind')} {f.get('subject')} at minute {seen.minute}"
                for seen in run.agent_runs for f in seen.findings if never.matches(f)]
        out.append(AgentCheck(f"no finding {never.describe()}", not hits,
                              "; ".join(hits[:MAX_SEEN])))
    return out


def _signal_kinds(run: CaseRun) -> list[str]:
    kinds = []
    for path in sorted({p for seen in run.agent_runs for p in seen.signals}):
        try:
            kinds.append(str(read_record(Path(path)).kind))
        except (OSError, ValueError):  # a run's report, not a signal
            continue
    return kinds


def _signals(spec: AgentSpec, run: CaseRun) -> list[AgentCheck]:
    kinds = _signal_kinds(run)
    out = [AgentCheck(f"signal {want}", any(fnmatch.fnmatch(k, want) for k in kinds),
                      f"signals: {', '.join(sorted(set(kinds))) or 'none'}")
           for want in spec.signals]
    if spec.no_signals:
        out.append(AgentCheck("no signal", not kinds, ", ".join(sorted(set(kinds)))))
    return out


def _actions(spec: AgentSpec, run: CaseRun) -> list[AgentCheck]:
    start = run.agent_runs[0].at if run.agent_runs else None
    ran = [(e.action, e.result.at) for e in run.executed
           if not e.revert and e.action is not None and not e.result.replayed]
    out = []
    for want in spec.actions:
        when = [at for action, at in ran if want.matches(action)]
        minute = (int((min(when) - start).total_seconds() // 60)
                  if when and start is not None else None)
        ok = minute is not None and (want.within_minutes is None
                                     or minute <= want.within_minutes)
        seen = ", ".join(a.describe() for a, _ in ran) or "nothing"
        out.append(AgentCheck(
            f"ran {want.describe()}" + (f" within {want.within_minutes} min"
                                        if want.within_minutes is not None else ""),
            ok, f"ran at minute {minute}" if minute is not None else f"ran: {seen}"))
    # Whatever else ran must be something the key accepts (no key: nothing may run).
    stray = [a.describe() for a, _ in ran if not spec.accepts(a)]
    out.append(AgentCheck("ran only what the key accepts" if spec.actions or spec.acceptable
                          else "nothing ran", not stray, ", ".join(stray)))
    return out


def _approval(spec: AgentSpec, run: CaseRun) -> list[AgentCheck]:
    if spec.approval is None:
        return []
    asked = [f"{c.action.describe()} ({c.decision.rule})" for r in run.incidents
             for c in r.actions
             if c.decision is not None and c.decision.outcome is DecisionOutcome.NEEDS_APPROVAL]
    return [AgentCheck("a human was asked" if spec.approval else "no human was asked",
                       bool(asked) == spec.approval,
                       "asked: " + ("; ".join(asked[:MAX_SEEN]) if asked else "never"))]


def _flags(spec: AgentSpec, run: CaseRun) -> list[AgentCheck]:
    out = []
    for key, want in spec.flags.items():
        have = run.flags.get(key)
        ok = have is not None and (want.enabled is None or have["enabled"] == want.enabled) \
            and (want.percent is None or float(have["percent"]) == want.percent)
        wanted = ", ".join(f"{k}={v}" for k, v in want.model_dump(exclude_none=True).items())
        out.append(AgentCheck(f"flag {key} ends {wanted}", ok,
                              "no such flag" if have is None else
                              f"enabled={have['enabled']}, percent={have['percent']:g}"))
    return out


def agent_checks(spec: AgentSpec, run: CaseRun) -> list[AgentCheck]:
    """Every line of the agent's answer key, judged on what the case run saw."""
    if run.error is not None:
        return []  # the error fails the case on its own; the checks would only repeat it
    failed = [f"{seen.run_id}: {seen.status} {seen.error}".strip()
              for seen in run.agent_runs if seen.status == "failed"]
    return [AgentCheck("every run finished", not failed, "; ".join(failed[:MAX_SEEN])),
            *_findings(spec, run), *_signals(spec, run), *_actions(spec, run),
            *_approval(spec, run), *_flags(spec, run)]
