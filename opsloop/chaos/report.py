"""The GameDay report of one run, from its journal: what was expected, what deviated, how
fast it was seen and undone, and a resilience score.

Score: each steady-state probe `p` has a weight `w_p` (the experiment's
`extensions.opsloop.weights`, default 1); `s_p` is 1 when `p` was within its tolerance with
the fault at its height (measured as the rollbacks start), else 0.
score = sum(w_p * s_p) / sum(w_p), from 0 (nothing held) to 1 (everything held).

Times are in the target's minutes when it tells its clock (the simulator), else wall minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from opsloop.chaos.experiments import Experiment
from opsloop.chaos.safeguard import METHOD_STEP


class ProbeOutcome(BaseModel):
    probe: str
    weight: float
    before: bool | None = None
    under_fault: bool | None = None
    under_fault_value: float | None = None
    after_rollbacks: bool | None = None
    after_rollbacks_value: float | None = None


class Detection(BaseModel):
    """One alert opsloop's own detection raised during the run, in run minutes."""

    name: str
    service: str
    minute: float


class GameDayReport(BaseModel):
    run_id: str
    experiment: str
    title: str
    hypothesis: str
    target: str
    started_at: str
    outcome: str  # held | deviated | aborted | refused_before_start | failed
    engine_status: str
    probes: list[ProbeOutcome]
    deviations: list[str] = Field(default_factory=list)
    safeguard: str | None = None  # what tripped, when it did
    fault_minute: float | None = None
    detected_minute: float | None = None  # the safeguard's trip
    time_to_detect_minutes: float | None = None
    opsloop_detection_measured: bool = False  # the caller watched opsloop's own alerts
    opsloop_detections: list[Detection] = Field(default_factory=list)
    opsloop_time_to_detect_minutes: float | None = None
    recovered: bool = False
    time_to_recover_minutes: float | None = None
    rollbacks: list[dict[str, str]] = Field(default_factory=list)
    rollbacks_ok: bool = False
    score: float = 0.0
    surprises: list[str] = Field(default_factory=list)


def build_report(experiment: Experiment, journal: dict[str, Any],
                 detections: list[Detection] | None = None) -> GameDayReport:
    """The report of one run, from the journal `engine.run_experiment` wrote."""
    ours = journal.get("opsloop") or {}
    timeline: list[dict[str, Any]] = ours.get("timeline") or []
    states = journal.get("steady_states") or {}
    before = _by_probe((states.get("before") or {}).get("probes") or [], engine=True)
    fault = _by_probe((ours.get("under_fault") or {}).get("probes") or [])
    after = _by_probe((ours.get("after_rollbacks") or {}).get("probes") or [])
    probes = [ProbeOutcome(probe=name, weight=experiment.weights.get(name, 1.0),
                           before=before.get(name, (None, None))[0],
                           under_fault=fault.get(name, (None, None))[0],
                           under_fault_value=fault.get(name, (None, None))[1],
                           after_rollbacks=after.get(name, (None, None))[0],
                           after_rollbacks_value=after.get(name, (None, None))[1])
              for name in experiment.probe_names]
    total = sum(p.weight for p in probes)
    score = sum(p.weight for p in probes if p.under_fault) / total if total else 0.0

    tripped: dict[str, Any] = (journal.get("safeguard") or {}).get("tripped") or {}
    before_met = bool((states.get("before") or {}).get("steady_state_met"))
    step_failed = tripped.get("probe") == METHOD_STEP
    outcome = ("refused_before_start" if not before_met else "failed" if step_failed
               else "aborted" if tripped
               else "deviated" if journal.get("deviated") or not all(p.under_fault for p in probes)
               else "held" if journal.get("status") == "completed" else "failed")
    if outcome in ("failed", "refused_before_start"):
        score = 0.0  # nothing was learned about the hypothesis under its fault

    fault_at = _first(timeline, lambda t: t["event"] == "activity" and t["phase"] == "method"
                      and t.get("type") == "action")
    detected_at = (_first(timeline, lambda t: t["event"] == "activity" and t["phase"] == "method"
                          and t.get("name") == tripped.get("after")) if tripped else None)
    faulted = outcome in ("aborted", "deviated")
    if step_failed:
        detected_at = None
    if detected_at is None and faulted:
        detected_at = _first(timeline, lambda t: t["event"] == "rollbacks_started")
    recovery = _first(timeline, lambda t: t["event"] == "recovery_checked")
    recovered = bool((ours.get("after_rollbacks") or {}).get("met"))
    ttd = _minutes(fault_at, detected_at) if faulted else None
    ttr = _minutes(detected_at, recovery) if faulted and recovered else None

    rollbacks = [{"name": str(r["activity"].get("name", "")), "status": str(r.get("status")),
                  **({"detail": str(_body(r).get("detail"))} if "detail" in _body(r) else {})}
                 for r in journal.get("rollbacks") or []]
    rollbacks_ok = bool(rollbacks) and all(
        r["status"] == "succeeded" and _body_ok(raw) for r, raw in
        zip(rollbacks, journal.get("rollbacks") or [], strict=True))

    measured = detections is not None
    detections = sorted(detections or [], key=lambda d: d.minute)
    fault_minute = _minute(fault_at)
    opsloop_ttd = (detections[0].minute - fault_minute
                   if detections and fault_minute is not None else None)

    deviations = [f"{p.probe} read {_num(p.under_fault_value)} under fault, outside its "
                  "tolerance" for p in probes if p.under_fault is False]
    if step_failed:
        deviations.insert(0, f"the method did not run as written: step {tripped['after']} "
                             f"failed ({tripped.get('error')})")
    elif tripped:
        deviations.insert(0, f"safeguard {tripped['probe']} read {_num(tripped.get('value'))} "
                             f"after {tripped['after']}")
    surprises = _surprises(outcome, probes, recovered, rollbacks_ok,
                           faulted and measured and not detections, ttd, opsloop_ttd)
    return GameDayReport(
        run_id=str(ours.get("run_id", "")), experiment=experiment.name, title=experiment.title,
        hypothesis=experiment.hypothesis, target=str(ours.get("target_url", "")),
        started_at=str(journal.get("start", "")), outcome=outcome,
        engine_status=str(journal.get("status", "")), probes=probes, deviations=deviations,
        safeguard=(f"{tripped['probe']} tripped after {tripped['after']}"
                   if tripped and not step_failed else None),
        fault_minute=fault_minute, detected_minute=_minute(detected_at),
        time_to_detect_minutes=ttd, opsloop_detection_measured=measured,
        opsloop_detections=detections,
        opsloop_time_to_detect_minutes=opsloop_ttd, recovered=recovered,
        time_to_recover_minutes=ttr, rollbacks=rollbacks, rollbacks_ok=rollbacks_ok,
        score=round(score, 3), surprises=surprises)


def _surprises(outcome: str, probes: list[ProbeOutcome], recovered: bool, rollbacks_ok: bool,
               unseen: bool, ttd: float | None,
               opsloop_ttd: float | None) -> list[str]:
    out: list[str] = []
    if outcome == "failed":
        out.append("the method could not run as written: nothing was learned about the "
                   "hypothesis (is the target's clock manual? `opsloop sim-serve "
                   "--minute-seconds 0`)")
    if outcome in ("aborted", "deviated"):
        broken = ", ".join(p.probe for p in probes if p.under_fault is False) or "the safeguard"
        out.append(f"the hypothesis did not hold ({broken}): a weakness to fix or a runbook "
                   "to write before the next run")
    if outcome != "refused_before_start" and not recovered:
        out.append("the steady state was not back after the rollbacks: recovery needs a "
                   "person or a better rollback")
    if not rollbacks_ok:
        out.append("a rollback failed or did nothing: check the experiment's rollbacks")
    if unseen:
        out.append("opsloop's own detection raised no alert while the hypothesis was broken: "
                   "an alerting gap")
    if opsloop_ttd is not None and ttd is not None and opsloop_ttd > ttd:
        out.append(f"opsloop's detection saw it {opsloop_ttd - ttd:g} min after the safeguard")
    return out


def render_markdown(report: GameDayReport) -> str:
    """The report as a page a person reads after the GameDay."""
    def m(value: float | None) -> str:
        return "not measured" if value is None else f"{value:g} min"

    lines = [f"# GameDay: {report.title}", "",
             f"- Run: `{report.run_id}` (experiment `{report.experiment}`) against "
             f"{report.target}, started {report.started_at}",
             f"- Outcome: **{report.outcome}** (engine status {report.engine_status})",
             f"- Resilience score: **{report.score:.2f}** (weighted share of steady-state "
             "probes that held under fault)", "",
             "## Hypothesis", "", report.hypothesis, "",
             "| probe | weight | before | under fault | after rollbacks |",
             "|---|---|---|---|---|"]
    for p in report.probes:
        lines.append(f"| {p.probe} | {p.weight:g} | {_mark(p.before)} | "
                     f"{_mark(p.under_fault)} {_num(p.under_fault_value)} | "
                     f"{_mark(p.after_rollbacks)} {_num(p.after_rollbacks_value)} |")
    lines += ["", "## What deviated", ""]
    lines += [f"- {d}" for d in report.deviations] or ["- nothing: the hypothesis held"]
    lines += ["", "## Detection and recovery", "",
              f"- Safeguard: {report.safeguard or 'did not trip'}",
              f"- Time to detect (fault to first failed check): {m(report.time_to_detect_minutes)}",
              "- opsloop's own detection: " + (", ".join(
                  f"{d.name} on {d.service} at minute {d.minute:g}"
                  for d in report.opsloop_detections) or (
                  "no alert" if report.opsloop_detection_measured else "not watched")),
              f"- opsloop time to detect: {m(report.opsloop_time_to_detect_minutes)}",
              f"- Recovered after rollbacks: {'yes' if report.recovered else 'no'}; "
              f"time to recover: {m(report.time_to_recover_minutes)}",
              "", "## Rollbacks", ""]
    lines += [f"- {r['name']}: {r['status']}" + (f" ({r['detail']})" if r.get("detail") else "")
              for r in report.rollbacks] or ["- none ran"]
    lines += ["", "## What surprised us", ""]
    lines += [f"- {s}" for s in report.surprises] or ["- nothing"]
    return "\n".join(lines) + "\n"


def report_paths(reports_dir: Path, run_id: str) -> tuple[Path, Path]:
    return reports_dir / f"gameday-{run_id}.md", reports_dir / f"gameday-{run_id}.json"


def _by_probe(checks: list[dict[str, Any]], engine: bool = False
              ) -> dict[str, tuple[bool | None, float | None]]:
    out: dict[str, tuple[bool | None, float | None]] = {}
    for c in checks:
        if engine:  # the engine's own journal entry for a hypothesis probe
            out[str(c.get("activity", {}).get("name", ""))] = (c.get("tolerance_met"), None)
        else:
            out[str(c.get("probe", ""))] = (c.get("ok"), c.get("value"))
    return out


def _first(timeline: list[dict[str, Any]], match: Any) -> dict[str, Any] | None:
    return next((t for t in timeline if match(t)), None)


def _minute(stamp: dict[str, Any] | None) -> float | None:
    if stamp is None:
        return None
    return float(stamp["minute"]) if stamp.get("minute") is not None else None


def _minutes(start: dict[str, Any] | None, end: dict[str, Any] | None) -> float | None:
    if start is None or end is None:
        return None
    if start.get("minute") is not None and end.get("minute") is not None:
        return float(end["minute"] - start["minute"])
    return round((float(end["wall"]) - float(start["wall"])) / 60, 2)


def _body(run: dict[str, Any]) -> dict[str, Any]:
    output = run.get("output")
    body = output.get("body") if isinstance(output, dict) else None
    return body if isinstance(body, dict) else {}


def _body_ok(run: dict[str, Any]) -> bool:
    """An HTTP rollback the target refused (>= 400), or that answered but says its action
    failed, did not roll back (Chaos Toolkit itself only warns on an HTTP error)."""
    output = run.get("output")
    status = output.get("status") if isinstance(output, dict) else None
    if isinstance(status, int) and status >= 400:
        return False
    return _body(run).get("status") not in ("failed", "skipped")


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else "ok" if ok else "FAILED"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "no reading"
