"""Argument parsing and error handling for every `opsloop` subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from opsloop.cli import agents as agents_cmd
from opsloop.cli import approvals, demo, incidents, policy
from opsloop.cli import ask as ask_cmd
from opsloop.cli import chaos as chaos_cmd
from opsloop.cli import cost as cost_cmd
from opsloop.cli import detect as detect_cmd
from opsloop.cli import eval as eval_cmd
from opsloop.cli import model as model_cmd
from opsloop.cli import notifications as notifications_cmd
from opsloop.cli import people as people_cmd
from opsloop.cli import rollouts as rollouts_cmd
from opsloop.cli import runbooks as runbooks_cmd
from opsloop.cli import serve as serve_cmd
from opsloop.cli import signals as signals_cmd
from opsloop.cli import simulate as simulate_cmd
from opsloop.cli import slo as slo_cmd
from opsloop.cli import vulns as vulns_cmd
from opsloop.cli.render import Ui
from opsloop.settings import Settings, load_settings
from opsloop.web import users as users_cmd

Handler = Callable[[argparse.Namespace, Settings, Ui], int]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--work-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="where state, drafts and signals live (env OPSLOOP_WORK_DIR, default ./work)",
    )
    return common


def _version() -> str:
    """The installed distribution's version (the checkout's, for an editable install)."""
    try:
        return metadata.version("opsloop")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="opsloop",
        parents=[common],
        description="The operations loop: observe, triage, diagnose, guard, act, verify, learn.",
    )
    parser.add_argument("--version", action="version", version=f"opsloop {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.register(sub, common)
    incidents.register(sub, common)
    approvals.register(sub, common)
    people_cmd.register(sub, common)
    policy.register(sub, common)
    ask_cmd.register(sub, common)
    eval_cmd.register(sub, common)
    model_cmd.register(sub, common)
    runbooks_cmd.register(sub, common)
    serve_cmd.register(sub, common)
    slo_cmd.register(sub, common)
    detect_cmd.register(sub, common)
    agents_cmd.register(sub, common)
    signals_cmd.register(sub, common)
    simulate_cmd.register(sub, common)
    rollouts_cmd.register(sub, common)
    chaos_cmd.register(sub, common)
    cost_cmd.register(sub, common)
    notifications_cmd.register(sub, common)
    users_cmd.register(sub, common)
    vulns_cmd.register(sub, common)
    return parser


def settings_for(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    if getattr(args, "work_dir", None) is not None:
        settings = settings.model_copy(update={"work_dir": args.work_dir})
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ui = Ui()
    try:
        settings = settings_for(args)
        handler: Handler = args.handler
        return handler(args, settings, ui)
    except KeyboardInterrupt:
        ui.err.print("interrupted")
        return 130
    except Exception as exc:  # every failure reaches the user as one readable line
        if os.environ.get("OPSLOOP_DEBUG"):
            raise
        ui.err.print(f"opsloop {args.command}: {exc}", markup=False, style="red")
        return 1


if __name__ == "__main__":
    sys.exit(main())
