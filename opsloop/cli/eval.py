"""`opsloop eval`: run eval suites, print the table, write the report, gate on regressions.

`opsloop eval retrieval ...` runs the runbook-retrieval eval (opsloop.evals.retrieval) and
prints its table: the eval measures, the CLI renders. `opsloop eval replay --policies DIR`
replays the stored incidents' actions through the guardrails under the current policies and
under DIR's, and shows what would have changed (opsloop.evals.policy_replay). Without
`replay`, `--policies DIR` keeps its meaning: run the eval suites under DIR's policies.
`opsloop eval forecast` backtests the capacity forecasts on NAB's real series against the
seasonal naive (opsloop.evals.forecast): MASE and interval coverage per series and overall.
`opsloop eval --model local` runs a small suite on a local llama.cpp model beside the
offline reasoner (opsloop.evals.local_model): a benchmark, not a gate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from opsloop.cli.detect import add_detector_options, detector_settings
from opsloop.cli.render import Ui, UserError
from opsloop.evals.cases import OFFLINE, CaseError, load_cases, load_suites, select
from opsloop.evals.compare import (
    check_thresholds,
    load_baseline,
    load_thresholds,
    regressions,
    unmeasured,
)
from opsloop.settings import REPO_ROOT, Settings
from opsloop.tools.retrieval.names import CHOICES


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common],
                       help="measure the agents' decisions on eval suites (or `eval retrieval`)")
    p.add_argument("target", nargs="?", choices=["retrieval", "anomalies", "replay", "forecast",
                                                 "regressions"],
                   help="`retrieval`: the runbook-retrieval eval instead of the agent suites; "
                        "`anomalies`: the anomaly detectors on a NAB corpus; "
                        "`replay --policies DIR`: the stored incidents' actions decided again "
                        "under DIR's policies, against the current ones; "
                        "`forecast`: a rolling-origin backtest of the capacity forecasts")
    p.add_argument("--suite", metavar="NAME", help="a suite from evals/suites/ (default: all)")
    p.add_argument("--case", metavar="GLOB", help="only cases whose id matches the glob")
    p.add_argument("--model", action="extend", nargs="+", metavar="M",
                   help=f"model(s) to compare side by side (default: {OFFLINE}, the "
                        "deterministic reasoner); each overrides settings.llm_model; "
                        "`scripted` runs the model path against the scripted loopback server")
    p.add_argument("--model-base-url", metavar="URL", help="OpenAI-compatible endpoint for --model")
    p.add_argument("--runs", type=int, default=1, metavar="N", help="runs per case (default 1)")
    p.add_argument("--approver", choices=["keyed", "rubber-stamp", "both"], default="keyed",
                   help="who answers approval requests: `keyed` (default: each case's "
                        "`human:`, the oracle approving what the key accepts), `rubber-stamp` "
                        "(approves everything), or `both`: keyed, then the suite again under "
                        "a rubber stamp, whose forbidden actions are reported (and gated) as "
                        "rubber_stamp_forbidden_actions")
    p.add_argument("--baseline", metavar="RUN",
                   help="an earlier run id (or result.json); exit non-zero on any regression")
    p.add_argument("--evals-dir", type=Path, default=REPO_ROOT / "evals", metavar="DIR",
                   help="cases/, suites/ and thresholds.yaml (default: the repo's evals/)")
    p.add_argument("--policies", type=Path, metavar="DIR",
                   help="evaluate these policies instead (with `replay`: replay the stored "
                        "incidents under them)")
    p.add_argument("--all", action="store_true",
                   help="with `replay`: list every replayed action, not only the changed ones")
    p.add_argument("--runbooks", type=Path, action="append", metavar="DIR",
                   help="evaluate these runbook folders instead (repeatable)")
    p.add_argument("--no-retrieval", action="store_true",
                   help="leave the retrieval metrics out of the report")
    p.add_argument("--backend", action="extend", nargs="+", metavar="NAME",
                   help="retrieval backends (only with `eval retrieval`)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="with `anomalies`: the folder the windows file's paths are relative to; "
                        "with `forecast`: every CSV under it (default: NAB's real series)")
    p.add_argument("--windows", type=Path, metavar="FILE",
                   help="with `anomalies`: NAB's combined_windows.json")
    p.add_argument("--horizon", type=int, default=48, metavar="HOURS",
                   help="with `forecast`: hours ahead each forecast is scored (default 48)")
    p.add_argument("--origins", type=int, default=15, metavar="N",
                   help="with `forecast`: forecast origins per series, a day apart (default 15)")
    p.add_argument("--seed", type=int, default=7, metavar="N",
                   help="with `regressions`: the seed of the generated series (default 7)")
    p.add_argument("--series", type=int, default=1000, metavar="N",
                   help="with `regressions`: series per family (default 1000)")
    local = p.add_argument_group("--model local (a benchmark on a local llama.cpp model)")
    local.add_argument("--package", choices=["smollm2", "qwen-1.5b"],
                       help="the installed model to serve (default: OPSLOOP_LLM_* when set, "
                            "else the smallest installed)")
    local.add_argument("--threads", type=int, default=1, metavar="N",
                       help="CPU threads for the model (default 1)")
    local.add_argument("--context", type=int, default=4096, metavar="TOKENS",
                       help="the model's context, and every prompt's budget (default 4096)")
    add_detector_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=evaluate)


_RETRIEVAL_COLUMNS = ["backend", "query", "queries", "recall_at_1", "recall_at_3", "mrr",
                      "no_match_precision", "no_match_recall", "threshold",
                      "suggested_threshold", "build_seconds", "query_p50_ms"]
_RETRIEVAL_HEADERS = {"recall_at_1": "R@1", "recall_at_3": "R@3", "mrr": "MRR",
                      "no_match_precision": "no-match P", "no_match_recall": "no-match R",
                      "suggested_threshold": "suggested", "build_seconds": "build s",
                      "query_p50_ms": "p50 ms"}


def retrieval(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    """`opsloop eval retrieval [--backend NAME ...] [--json]`: one row per backend."""
    from opsloop.evals.retrieval import evaluate_backends  # chromadb loads only here

    names: list[str] = list(getattr(args, "backend", None) or [settings.embedding_backend])
    unknown = [n for n in names if n not in CHOICES]
    if unknown:
        ui.err.print(f"opsloop eval retrieval: unknown backend(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(CHOICES)}", markup=False, style="red")
        return 2
    rows = evaluate_backends(settings, names, progress=lambda name: ui.err.print(
        f"retrieval eval: {name} ...", markup=False))
    if getattr(args, "json", False):
        ui.json(rows)
    else:
        ui.table("Runbook retrieval", [_RETRIEVAL_HEADERS.get(c, c) for c in _RETRIEVAL_COLUMNS],
                 [[str(r.get(c, "unavailable" if c != "backend" else ""))
                   for c in _RETRIEVAL_COLUMNS] for r in rows])
        for r in rows:
            if "error" in r:
                ui.err.print(f"{r['backend']}: {r['error']}", markup=False, style="yellow")
    return 0 if all("error" not in r for r in rows) else 1


def anomalies(args: argparse.Namespace, ui: Ui) -> int:
    """`opsloop eval anomalies --data DIR --windows FILE`: NAB scores for the three profiles."""
    from opsloop.evals.anomalies import CorpusError, evaluate_corpus

    if args.data is None or args.windows is None:
        raise UserError("eval anomalies needs --data DIR and --windows FILE")
    if not args.data.is_dir():
        raise UserError(f"--data {args.data}: not a directory")
    try:
        result = evaluate_corpus(args.data, args.windows, detector_settings(args),
                                 progress=lambda m: ui.err.print("  " + m, markup=False))
    except CorpusError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        ui.json({"series": result.series, "rows": result.rows, "windows": result.windows,
                 "seconds": round(result.seconds, 2),
                 "profiles": [vars(r) for r in result.results]})
        return 0
    ui.table(f"NAB: {result.series} series, {result.rows} rows, {result.windows} windows",
             ["profile", "score", "threshold", "TP", "FP", "FN", "raw"],
             [[r.profile, f"{r.score:.1f}", f"{r.threshold:.4f}", str(r.true_positives),
               str(r.false_positives), str(r.false_negatives), f"{r.raw:.2f}"]
              for r in result.results])
    ui.out.print(f"time: {result.seconds:.1f}s (detection and scoring)", markup=False)
    return 0


def forecast_backtest(args: argparse.Namespace, ui: Ui) -> int:
    """`opsloop eval forecast [--data DIR] [--horizon H] [--origins N] [--json]`: MASE and
    80%/95% coverage per series and overall; exit 1 when a goal is missed."""
    from opsloop.evals.forecast import BacktestError, run_backtest, series_files

    try:
        result = run_backtest(series_files(args.data), horizon=args.horizon,
                              origins=args.origins,
                              progress=lambda m: ui.err.print("  " + m, markup=False))
    except BacktestError as exc:
        raise UserError(str(exc)) from None
    goals = result.goals()
    if args.json:
        ui.json(result.to_dict())
        return 0 if all(goals.values()) else 1
    overall = result.overall()
    rows = [[s.series, str(s.origins), f"{s.mase:.3f}", f"{s.naive_mase:.3f}",
             f"{s.coverage_80:.1%}", f"{s.coverage_95:.1%}",
             ", ".join(f"{m} ×{n}" for m, n in sorted(s.models.items()))]
            for s in result.series]
    rows.append(["overall", str(sum(s.origins for s in result.series)),
                 f"{overall['mase']:.3f}", f"{overall['naive_mase']:.3f}",
                 f"{overall['coverage_80']:.1%}", f"{overall['coverage_95']:.1%}", ""])
    ui.table(f"Forecast backtest: {len(result.series)} series, horizon 1-{result.horizon} h, "
             f"{result.origins} origins a day apart, history ≤ {result.history} h",
             ["series", "origins", "MASE", "seasonal naive MASE", "80% coverage",
              "95% coverage", "models"], rows)
    ui.table("Overall by horizon", ["hours ahead", "MASE", "seasonal naive MASE",
                                    "80% coverage", "95% coverage"],
             [[g, f"{v['mase']:.3f}", f"{v['naive_mase']:.3f}", f"{v['coverage_80']:.1%}",
               f"{v['coverage_95']:.1%}"] for g, v in result.overall_by_horizon().items()])
    ui.out.print("goals: " + ", ".join(f"{k} {'✓' if ok else '✗'}" for k, ok in goals.items())
                 + f"; time {result.seconds:.1f}s", markup=False)
    return 0 if all(goals.values()) else 1


def policy_replay(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    """`opsloop eval replay --policies DIR [--all] [--json]`: one row per action whose
    decision would change (with --all, every action); exit 0 whatever changed."""
    from opsloop.evals.policy_replay import COLUMNS, ReplayError, replay_store, row

    if args.policies is None:
        raise UserError("eval replay needs --policies DIR: the policies to replay under")
    suite_only = [flag for flag, value in (("--suite", args.suite), ("--case", args.case),
                                           ("--model", args.model), ("--baseline", args.baseline),
                                           ("--runbooks", args.runbooks),
                                           ("--approver", args.approver != "keyed")) if value]
    if suite_only:
        raise UserError(f"{', '.join(suite_only)}: not for `eval replay`, which replays the "
                        "stored incidents (drop `replay` to run the suites under --policies)")
    if not args.policies.is_dir():
        raise UserError(f"--policies {args.policies}: not a directory")
    try:
        run = replay_store(settings, args.policies)
    except ReplayError as exc:
        raise UserError(str(exc)) from None
    for problem in run.problems:
        ui.err.print(f"skipped: {problem}", markup=False, style="yellow")
    for problem in run.unsafe:
        ui.err.print(f"policy check would refuse {args.policies}: {problem}", markup=False,
                     style="yellow")
    if args.json:
        ui.json(run.to_dict())
        return 0
    shown = run.result.actions if args.all else run.result.changed
    ui.table(f"Replay of {run.incidents} stored incident(s), {len(run.result.actions)} "
             f"action(s): {settings.policies_dir} -> {args.policies}", COLUMNS,
             [row(a) for a in shown])
    moves = run.result.transitions()
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(moves.items())) or "no outcome changes"
    ui.out.print(f"{len(run.result.changed)} decision(s) change ({summary})", markup=False)
    drift = [a for a in run.result.actions if a.drift]
    if drift:
        ui.out.print(f"{len(drift)} action(s) replay differently from what was recorded under "
                     "the current policies (policies changed since, or a fact the record "
                     "lacks); see --json `drift`", markup=False)
    return 0


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    update: dict[str, Any] = {}
    if args.policies is not None:
        if not args.policies.is_dir():
            raise UserError(f"--policies {args.policies}: not a directory")
        update["policies_dir"] = args.policies
    if args.runbooks:
        missing = [str(d) for d in args.runbooks if not d.is_dir()]
        if missing:
            raise UserError(f"--runbooks: not a directory: {', '.join(missing)}")
        update["runbook_dirs"] = list(args.runbooks)
    return settings.model_copy(update=update) if update else settings


def regression_detection(args: argparse.Namespace, ui: Ui) -> int:
    """`opsloop eval regressions [--seed N] [--series N] [--json]`: the performance agent's
    change-point detector on generated series with known steps; exit 1 when a goal is missed."""
    from opsloop.evals.regressions import render, run_regression_eval

    if args.series < 1:
        raise UserError(f"--series must be at least 1 (got {args.series})")
    return render(run_regression_eval(args.seed, args.series), ui, args.json)


def local_model(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    """`opsloop eval --model local [--package P] [--case GLOB]`: root cause agreement, calls,
    tokens and seconds per case on a local model; a benchmark, exit 0 unless it cannot run."""
    from opsloop.evals.local_model import (
        COLUMNS,
        LocalOptions,
        default_cases,
        run_local_eval,
        summary_line,
        table_rows,
    )
    from opsloop.evals.suite import EvalError, new_run_id

    if args.threads < 1 or args.context < 1040:
        raise UserError(f"--threads must be ≥ 1 (got {args.threads}) and --context ≥ 1040 "
                        f"(got {args.context})")
    try:
        cases = load_cases(args.evals_dir / "cases")
        picked = (select(cases, load_suites(args.evals_dir / "suites")[args.suite]
                         if args.suite else None, args.case)
                  if args.suite or args.case else default_cases(cases))
    except (CaseError, EvalError, KeyError) as exc:
        raise UserError(f"--model local: {exc}") from None
    if not picked:
        raise UserError(f"--model local: no case matches --case {args.case}")
    run_dir = settings.work_dir / "evals" / new_run_id()
    options = LocalOptions(args.package, args.threads, args.context)
    try:
        result = run_local_eval(_settings(args, settings), picked, options, run_dir,
                                lambda m: ui.err.print("  " + m, markup=False))
    except (EvalError, CaseError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        ui.json(result)
        return 0
    ui.table(f"Local model {result['model']}: {len(result['cases'])} case(s)", COLUMNS,
             table_rows(result))
    ui.out.print(summary_line(result), markup=False)
    return 0


def evaluate(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    # The loop, chromadb and matplotlib load only when an eval really runs.
    from opsloop.evals.driver import check_case
    from opsloop.evals.report import (
        approver_line,
        case_tables,
        summary_rows,
        write_report,
    )
    from opsloop.evals.suite import EvalError, new_run_id, run_eval

    if args.target == "retrieval":
        return retrieval(args, settings, ui)
    if args.target == "anomalies":
        return anomalies(args, ui)
    if args.target == "replay":
        return policy_replay(args, settings, ui)
    if args.target == "forecast":
        return forecast_backtest(args, ui)
    if args.target == "regressions":
        return regression_detection(args, ui)
    if args.model == ["local"]:
        return local_model(args, settings, ui)
    if args.package:
        raise UserError("--package belongs to `opsloop eval --model local`")
    if args.all:
        raise UserError("--all belongs to `opsloop eval replay`")
    if args.data or args.windows:
        raise UserError("--data and --windows belong to `opsloop eval anomalies`")
    if args.backend:
        raise UserError("--backend belongs to `opsloop eval retrieval`")
    settings = _settings(args, settings)
    evals_dir: Path = args.evals_dir
    try:
        cases = load_cases(evals_dir / "cases")
        suites = load_suites(evals_dir / "suites")
        thresholds = load_thresholds(evals_dir / "thresholds.yaml")
    except (CaseError, ValueError) as exc:
        raise UserError(str(exc)) from None
    suite = None
    if args.suite is not None:
        if args.suite not in suites:
            raise UserError(f"unknown suite {args.suite!r}; suites: {', '.join(suites) or 'none'}")
        suite = suites[args.suite]
    picked = select(cases, suite, args.case)
    if not picked:
        raise UserError(f"no case matches suite {args.suite or 'all'} and --case {args.case}")
    try:
        for case in picked:
            check_case(case)  # every data mistake before anything runs or is written
    except CaseError as exc:
        raise UserError(str(exc)) from None
    baseline = None
    evals_work = settings.work_dir / "evals"
    if args.baseline:
        try:
            baseline = load_baseline(args.baseline, evals_work)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    models = list(dict.fromkeys(args.model or [OFFLINE]))
    run_dir = evals_work / new_run_id()
    ui.err.print(f"eval {run_dir.name}: {len(picked)} case(s) × {len(models)} model(s) × "
                 f"{args.runs} run(s), approver {args.approver} → {run_dir}", markup=False)
    try:
        result = run_eval(settings, picked, models=models, runs=args.runs, run_dir=run_dir,
                          base_url=args.model_base_url, with_retrieval=not args.no_retrieval,
                          approver=args.approver,
                          progress=lambda m: ui.err.print("  " + m, markup=False))
    except (EvalError, CaseError) as exc:
        raise UserError(str(exc)) from None
    result.update(suite=args.suite, case_glob=args.case, baseline=args.baseline)
    gate = thresholds.gate(args.suite)
    result["threshold_failures"] = check_thresholds(result["summary"], gate)
    result["unmeasured_gates"] = unmeasured(result["summary"], gate)
    result["regressions"] = regressions(result, baseline, thresholds) if baseline else []
    report = write_report(result, run_dir)
    gates = result["threshold_failures"] + result["regressions"]
    if args.json:
        ui.json(result)
    else:
        for title, columns, rows in case_tables(result):
            ui.table(f"eval {run_dir.name}: {title}", columns, rows)
        ui.table("summary", ["metric", *models], summary_rows(result))
        ui.out.print(approver_line(result), markup=False)
        for line in gates:
            ui.out.print(f"✗ {line}", markup=False, style="red")
        if result["unmeasured_gates"]:
            ui.out.print("not measured, not checked: " + ", ".join(result["unmeasured_gates"])
                         + " (needs --approver both)", markup=False, style="yellow")
        ui.out.print(f"report: {report}", markup=False)
    if gates:
        print(f"opsloop eval: {len(gates)} gate(s) failed; see {report}", file=sys.stderr)
    return 1 if gates else 0
