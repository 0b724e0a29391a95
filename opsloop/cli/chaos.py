"""`opsloop chaos`: resilience GameDays on Chaos Toolkit experiments.

`list` the experiments in the folder (settings.experiments_dir, `--dir`), `validate FILE`
one file (engine rules and opsloop's extension; errors name file and field), `run NAME`
against an HTTP target (`opsloop sim-serve`'s URL, `--target`) after resilience.yaml allows
it, and `history`: every GameDay report kept under the work dir.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

DEFAULT_TARGET = "http://127.0.0.1:9100"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("chaos", parents=[common],
                       help="resilience GameDays: list, validate, run experiments, history")
    p.set_defaults(handler=list_experiments, json=False, dir=None)
    verbs = p.add_subparsers(dest="chaos_command", metavar="VERB")
    ls = verbs.add_parser("list", parents=[common], help="the experiments and what they touch")
    _dir_option(ls)
    ls.set_defaults(handler=list_experiments)
    v = verbs.add_parser("validate", parents=[common], help="check one experiment file")
    v.add_argument("file", type=Path, metavar="FILE")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=validate)
    r = verbs.add_parser("run", parents=[common],
                         help="run one experiment against a target, if resilience.yaml allows")
    r.add_argument("name", metavar="NAME", help="the experiment's file name without suffix")
    r.add_argument("--target", default=None,
                   help="the served simulator (or a target speaking its API); env "
                        f"OPSLOOP_CHAOS_TARGET, default {DEFAULT_TARGET}")
    _dir_option(r)
    r.set_defaults(handler=run)
    h = verbs.add_parser("history", parents=[common], help="every GameDay run, oldest first")
    h.add_argument("--json", action="store_true")
    h.set_defaults(handler=show_history)


def _dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="the experiments folder (default: settings' experiments_dir)")
    p.add_argument("--json", action="store_true")


def _folder(args: argparse.Namespace, settings: Settings) -> Path:
    folder: Path = args.dir or settings.experiments_dir
    if not folder.is_dir():
        raise UserError(f"no experiments folder at {folder} (--dir, or experiments_dir in "
                        "the settings)")
    return folder


def list_experiments(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.chaos.experiments import load_folder

    experiments, errors = load_folder(_folder(args, settings))
    rows: list[dict[str, Any]] = [
            {"name": e.name, "title": e.title, "services": list(e.blast_radius.services),
             "instances": e.blast_radius.instances,
             "duration_minutes": e.blast_radius.duration_minutes, "probes": e.probe_names,
             "file": str(e.path)} for e in experiments]
    if args.json:
        ui.json({"experiments": rows, "errors": [str(e) for e in errors]})
    else:
        ui.table("Experiments", ["name", "services", "instances", "duration", "hypothesis probes",
                                 "title"],
                 [[r["name"], ", ".join(r["services"]), str(r["instances"]),
                   f"{r['duration_minutes']} min", ", ".join(r["probes"]), r["title"]]
                  for r in rows])
        for error in errors:
            ui.err.print(f"invalid: {error}", markup=False, style="red")
    return 1 if errors else 0


def validate(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.chaos.experiments import ExperimentError, load_experiment

    path: Path = args.file
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        experiment = load_experiment(path)
    except ExperimentError as exc:
        if args.json:
            ui.json({"file": str(path), "valid": False, "where": exc.where,
                     "problem": exc.problem})
            return 1
        raise UserError(str(exc)) from None
    radius = experiment.blast_radius
    if args.json:
        ui.json({"file": str(path), "valid": True, "name": experiment.name,
                 "services": list(radius.services), "instances": radius.instances,
                 "duration_minutes": radius.duration_minutes})
    else:
        ui.out.print(f"{path}: valid — {experiment.title} ({', '.join(radius.services)}, "
                     f"{radius.instances} instance(s), {radius.duration_minutes} min)",
                     markup=False)
    return 0


def run(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.chaos.experiments import ExperimentError, find
    from opsloop.chaos.gameday import run_gameday
    from opsloop.environments import UnknownEnvironment, open_environment, remote_ref
    from opsloop.graph.gameday import opsloop_watch
    from opsloop.graph.resilience_facts import resilience_facts
    from opsloop.policy import load_policies
    from opsloop.policy.resilience import refusals
    from opsloop.store import IncidentStore

    folder = _folder(args, settings)
    try:
        experiment = find(folder, args.name)
    except ExperimentError as exc:
        raise UserError(str(exc)) from None
    target = (args.target or os.environ.get("OPSLOOP_CHAOS_TARGET") or DEFAULT_TARGET).rstrip("/")
    if not target.startswith(("http://", "https://")):
        raise UserError(f"--target: {target!r} is not an http(s) URL")
    settings = settings.model_copy(update={"experiments_dir": folder})
    policies = load_policies(settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)
    try:
        production = open_environment(remote_ref(target), settings)
    except UnknownEnvironment as exc:
        raise UserError(str(exc)) from None
    store = IncidentStore(settings.state_dir / "opsloop.db")
    try:
        try:
            now = production.now()
        except Exception as exc:  # the target is down or is not a simulator API
            raise UserError(f"--target {target}: cannot read its clock ({exc})") from None
        facts = resilience_facts(experiment.name, now=now, settings=settings,
                                 policies=policies, telemetry=production, store=store,
                                 target_url=target)
        refused = refusals(policies.resilience, facts)
        if refused:
            if args.json:
                ui.json({"experiment": experiment.name, "started": False,
                         "refusals": [{"rule": r.rule, "reason": r.reason} for r in refused]})
            else:
                ui.err.print(f"{experiment.name}: not started", markup=False, style="red")
                for r in refused:
                    ui.err.print(f"  {r.rule}: {r.reason}", markup=False)
            return 1
        run_id = f"{experiment.name}-{datetime.now(UTC):%Y%m%d%H%M%S}"
        report = run_gameday(experiment, target, state_dir=settings.state_dir,
                             reports_dir=settings.work_dir / "reports", run_id=run_id,
                             started_at=now,
                             watch=opsloop_watch(policies, production, production.now))
    finally:
        store.close()
        production.close()
    if args.json:
        ui.json(report)
    else:
        _print_report(ui, report, settings)
    return 0 if report.outcome in ("held", "aborted", "deviated") and report.rollbacks_ok else 1


def _print_report(ui: Ui, report: Any, settings: Settings) -> None:
    def m(value: float | None) -> str:
        return "-" if value is None else f"{value:g} min"

    ui.out.print(f"{report.run_id}: {report.outcome} — score {report.score:.2f}, "
                 f"detect {m(report.time_to_detect_minutes)}, "
                 f"recover {m(report.time_to_recover_minutes)}, rollbacks "
                 f"{'done' if report.rollbacks_ok else 'NOT DONE'}", markup=False)
    ui.table("Hypothesis: " + report.hypothesis, ["probe", "weight", "before", "under fault",
                                                  "after rollbacks"],
             [[p.probe, f"{p.weight:g}", _mark(p.before, None),
               _mark(p.under_fault, p.under_fault_value),
               _mark(p.after_rollbacks, p.after_rollbacks_value)] for p in report.probes])
    for line in report.deviations:
        ui.out.print(f"deviated: {line}", markup=False)
    for line in report.surprises:
        ui.out.print(f"surprise: {line}", markup=False)
    reports = settings.work_dir / "reports"
    ui.out.print(f"report: {reports / f'gameday-{report.run_id}.md'}; journal: "
                 f"{settings.state_dir / 'chaos' / report.run_id / 'journal.json'}", markup=False)


def _mark(ok: bool | None, value: float | None) -> str:
    shown = "" if value is None else f" ({value:g})"
    return ("-" if ok is None else "ok" if ok else "FAILED") + shown


def show_history(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.chaos.gameday import history

    reports, problems = history(settings.work_dir / "reports")
    if args.json:
        ui.json({"runs": reports, "problems": problems})
    else:
        ui.table("GameDays", ["run", "experiment", "started", "outcome", "score", "detect",
                              "recover", "rollbacks"],
                 [[r.run_id, r.experiment, r.started_at[:16], r.outcome, f"{r.score:.2f}",
                   "-" if r.time_to_detect_minutes is None else f"{r.time_to_detect_minutes:g}m",
                   "-" if r.time_to_recover_minutes is None
                   else f"{r.time_to_recover_minutes:g}m",
                   "done" if r.rollbacks_ok else "NOT DONE"] for r in reports])
        for problem in problems:
            ui.err.print(problem, markup=False, style="red")
    return 0
