"""An eval run: every selected case, for every model, N times; scored and summarised."""

from __future__ import annotations

import contextlib
import importlib
import os
import statistics
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsloop.evals.cases import OFFLINE, Case
from opsloop.evals.compare import RUBBER_STAMP as RUBBER_STAMP_GATED
from opsloop.evals.driver import APPROVERS, KEYED, RUBBER_STAMP, Harness
from opsloop.evals.metrics import CaseScore, score_case
from opsloop.evals.overlay import overlay_policies
from opsloop.evals.runner import run_case
from opsloop.policy import Policies, load_policies
from opsloop.settings import Settings
from opsloop.tools.runbook_index import RunbookIndex

SCRIPTED = "scripted"  # the model path against the scripted OpenAI-compatible server, offline
BOTH = "both"  # `--approver both`: keyed, then the same cases again under a rubber stamp
APPROVER_MODES = (*APPROVERS, BOTH)
# What the rubber-stamp pass of `--approver both` adds to the keyed summary (compare.py
# gates and compares them as `rubber_stamp_<metric>`).
RUBBER_STAMP_METRICS = tuple(k.removeprefix("rubber_stamp_") for k in RUBBER_STAMP_GATED)
Progress = Callable[[str], None]


class EvalError(Exception):
    """An eval that cannot run as asked; the message says why and what to do."""


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def case_workdir(run_dir: Path, model: str, case_id: str, run: int) -> Path:
    """One case run's own work dir, under a random name.

    Paths under it end up in the incident's timeline, which the postmortem's model reads,
    so the folder must not spell the case. `cases/<model>/<case>/run-N` links to it.
    """
    workdir = run_dir / "runs" / uuid.uuid4().hex[:12]
    workdir.mkdir(parents=True)
    link = run_dir / "cases" / model.replace("/", "_") / case_id / f"run-{run}"
    link.parent.mkdir(parents=True, exist_ok=True)
    # Where symlinks cannot be made, the report's `workdir` still says where it is.
    with contextlib.suppress(OSError):
        link.symlink_to(os.path.relpath(workdir, link.parent), target_is_directory=True)
    return workdir


def model_settings(settings: Settings, model: str, base_url: str | None) -> Settings:
    """The settings one model label runs with; `offline` is the deterministic reasoner."""
    if model == OFFLINE:
        return settings.model_copy(update={"llm_model": None, "llm_base_url": None}) if (
            "llm_model" in type(settings).model_fields) else settings
    fields = type(settings).model_fields
    if "llm_model" not in fields:
        raise EvalError(
            f"--model {model}: the model path is not configured in this build (Settings has "
            "no llm_model); run without --model to evaluate the offline reasoner")
    update: dict[str, Any] = {"llm_model": model}
    if base_url is not None:
        if "llm_base_url" not in fields:
            raise EvalError("--model-base-url: Settings has no llm_base_url in this build")
        update["llm_base_url"] = base_url
    return settings.model_copy(update=update)


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def aggregate(scores: list[CaseScore]) -> dict[str, Any]:
    """Suite-level numbers over every (case, run) of one model."""
    inc = [i for s in scores for i in s.incidents]
    tp = sum(1 for i in inc if i.approval_expected and i.approval_requested)
    fp = sum(1 for i in inc if not i.approval_expected and i.approval_requested)
    fn = sum(1 for i in inc if i.approval_expected and not i.approval_requested)
    with_pm = [i.postmortem_consistency for i in inc if i.postmortem_consistency is not None]
    return {
        "cases": len(scores),
        "passed": sum(1 for s in scores if s.passed),
        "pass_rate": _rate([s.passed for s in scores]),
        "detection_rate": _rate([i.detected for i in inc]),
        "severity_accuracy": _rate([i.severity_ok for i in inc]),
        "routing_accuracy": _rate([i.routing_ok for i in inc]),
        "root_cause_top1": _rate([i.top1 for i in inc]),
        "root_cause_top3": _rate([i.top3 for i in inc]),
        "remediation_correctness": _rate([i.remediation_ok for i in inc]),
        "verification_accuracy": _rate([i.verification_ok for i in inc]),
        "approval_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "approval_recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "guardrail_violations": sum(len(s.guardrail_violations) for s in scores),
        "forbidden_actions": sum(len(s.forbidden_executed) for s in scores),
        "proposals": sum(len(s.proposals) for s in scores),
        "wrong_proposals": sum(s.wrong_proposals for s in scores),
        "harmful_proposals": sum(s.harmful_proposals for s in scores),
        "harmful_to_human": sum(s.harmful_to_human for s in scores),
        "wrong_actions_run": sum(s.wrong_actions_run for s in scores),
        "harmful_actions_run": sum(s.harmful_actions_run for s in scores),
        "errors": sum(1 for s in scores if s.error),
        "agent_checks": _rate([c.ok for s in scores for c in s.checks]),
        "postmortem_completeness": round(
            statistics.fmean(i.postmortem_completeness for i in inc), 4) if inc else None,
        "postmortem_consistency": round(statistics.fmean(with_pm), 4) if with_pm else None,
        "median_minutes_to_detect": _median([i.minutes_to_detect for i in inc]),
        "median_minutes_to_mitigate": _median([i.minutes_to_mitigate for i in inc]),
        "median_minutes_to_verify": _median([i.minutes_to_verify for i in inc]),
        "model_calls": sum(s.model_calls for s in scores),
        "tokens": sum(s.tokens for s in scores),
        "model_latency_seconds": round(sum(s.model_latency_seconds for s in scores), 3),
        "seconds": round(sum(s.seconds for s in scores), 2),
    }


def score_dict(score: CaseScore) -> dict[str, Any]:
    return {**asdict(score), "passed": score.passed, **score.harm(),
            "proposals": [{**asdict(p), "wrong": p.wrong, "harmful": p.harmful,
                           "to_human": p.to_human} for p in score.proposals],
            "incidents": [{**asdict(i), "passed": i.passed} for i in score.incidents]}


def rubber_stamp_key(metric: str) -> str:
    """The keyed summary's name for a number measured in the rubber-stamp pass."""
    return f"rubber_stamp_{metric}"


def retrieval_metrics(settings: Settings) -> dict[str, Any] | None:
    """The runbook-retrieval eval's numbers, when that module is present in this build."""
    try:
        module = importlib.import_module("opsloop.evals.retrieval")
    except ImportError:
        return None
    evaluate = getattr(module, "evaluate", None)
    if evaluate is None:
        return None
    try:
        result = evaluate(settings, None)
    except Exception as exc:  # their failure must not sink the agent eval's report
        return {"error": f"{type(exc).__name__}: {exc}"}
    return dict(result) if isinstance(result, dict) else {"result": str(result)}


def run_eval(settings: Settings, cases: list[Case], *, models: list[str], runs: int,
             run_dir: Path, base_url: str | None = None, progress: Progress = lambda _m: None,
             with_retrieval: bool = True, approver: str = KEYED) -> dict[str, Any]:
    """Run and score everything; returns the JSON-ready result (also kept by the caller).

    `approver` answers the approval requests: `keyed` (each case's `human:`),
    `rubber-stamp` (yes to everything), or `both`: the keyed run is the result, and the
    same cases run again under a rubber stamp; that pass's harm numbers join each model's
    summary as `rubber_stamp_*`, its rows are kept under `rubber_stamp`.
    """
    if runs < 1:
        raise EvalError(f"--runs must be at least 1, got {runs}")
    if approver not in APPROVER_MODES:
        raise EvalError(f"--approver must be one of {', '.join(APPROVER_MODES)}, got "
                        f"{approver!r}")
    with ExitStack() as stack:
        urls = {m: base_url for m in models}
        if SCRIPTED in models and base_url is None:
            urls[SCRIPTED] = stack.enter_context(_scripted_server())
        per_model = {m: model_settings(settings, m, urls[m]) for m in models}
        return _run(settings, per_model, cases, runs, run_dir, progress, with_retrieval,
                    approver)


@contextmanager
def _scripted_server() -> Iterator[str]:
    """The scripted model server on loopback, for `--model scripted` (offline, no key)."""
    try:
        from opsloop.llm.testing import ScriptedServer
    except ImportError:
        raise EvalError("--model scripted: the scripted model server is not part of this "
                        "build (opsloop.llm.testing)") from None
    with ScriptedServer() as server:
        yield server.url


def _run(settings: Settings, per_model: dict[str, Settings], cases: list[Case], runs: int,
         run_dir: Path, progress: Progress, with_retrieval: bool, mode: str) -> dict[str, Any]:
    models = list(per_model)
    # Evals run in simulation and measure what a policy does, unsafe or not: the planted
    # defect (SEV1 on auto) must reach the loop to be caught as a regression.
    policies = load_policies(settings.policies_dir, allow_unsafe=True)
    # The run's own index (under run_dir), built with the settings' embedding backend.
    runbooks = RunbookIndex.from_settings(settings.model_copy(update={"work_dir": run_dir}))
    overlays: dict[str, Policies] = {}
    started = datetime.now(UTC)
    approvers = [KEYED, RUBBER_STAMP] if mode == BOTH else [mode]
    scores: dict[str, dict[str, list[CaseScore]]] = {a: {m: [] for m in models}
                                                     for a in approvers}
    rows: dict[str, list[dict[str, Any]]] = {a: [] for a in approvers}  # in run order
    total, n = len(cases) * len(models) * runs * len(approvers), 0
    for approver in approvers:
        # The second pass of `both` keeps its case folders apart: cases/<model>@rubber-stamp/
        label = "" if approver == approvers[0] else f"@{approver}"
        for model, model_cfg in per_model.items():
            harness = Harness(settings=model_cfg, policies=policies, runbooks=runbooks,
                              approver=approver)
            for case in cases:
                case_policies = policies
                if case.policies:
                    if case.id not in overlays:
                        overlays[case.id] = overlay_policies(
                            settings.policies_dir, case.policies, run_dir / "policies")
                    case_policies = overlays[case.id]
                for r in range(1, runs + 1):
                    n += 1
                    workdir = case_workdir(run_dir, model + label, case.id, r)
                    run = run_case(case, harness, case_policies, workdir, model, r)
                    score = score_case(case, run)
                    scores[approver][model].append(score)
                    rows[approver].append({**score_dict(score),
                                           "workdir": workdir.relative_to(run_dir).as_posix()})
                    mark = "pass" if score.passed else ("ERROR" if score.error else "fail")
                    who = f" [{approver}]" if len(approvers) > 1 else ""
                    progress(f"[{n}/{total}] {model}{who} {case.id}"
                             + (f" run {r}" if runs > 1 else "")
                             + f": {mark} ({run.seconds:.1f}s)")
    primary = approvers[0]
    summary = {m: aggregate(s) for m, s in scores[primary].items()}
    result: dict[str, Any] = {
        "run": run_dir.name,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "models": models,
        "runs": runs,
        "approver": mode,
        "summary_approver": primary,
        "policies_dir": str(settings.policies_dir),
        "runbook_dirs": [str(d) for d in settings.runbook_dirs],
        "summary": summary,
        "cases": rows[primary],
        "retrieval": retrieval_metrics(settings) if with_retrieval else None,
    }
    if mode == BOTH:
        stamped = {m: aggregate(s) for m, s in scores[RUBBER_STAMP].items()}
        for m, numbers in stamped.items():
            summary[m].update({rubber_stamp_key(k): numbers[k] for k in RUBBER_STAMP_METRICS})
        # Each keyed row says what the rubber stamp ran in the same case (same order).
        for row, other in zip(rows[KEYED], rows[RUBBER_STAMP], strict=True):
            row["rubber_stamp_forbidden_executed"] = other["forbidden_executed"]
            row["rubber_stamp_ran"] = [p["action"] for p in other["proposals"]
                                       if p["ran"] and (p["wrong"] or p["forbidden"])]
        result["rubber_stamp"] = {"summary": stamped, "cases": rows[RUBBER_STAMP]}
    return result
