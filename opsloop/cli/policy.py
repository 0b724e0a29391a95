"""`opsloop policy check [DIR]`: validate policy files; non-zero exit on any error."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from opsloop.cli.render import Ui
from opsloop.policy import check_policies
from opsloop.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("policy", parents=[common], help="policy tools")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    c = psub.add_parser("check", parents=[common], help="validate a policy directory")
    c.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=None,
        help="policy directory (default: the configured policies/)",
    )
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=check)


def check(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    directory = args.dir or settings.policies_dir
    problems = check_policies(directory)
    errors = [p for p in problems if p.level == "error"]
    if args.json:
        ui.json(
            {
                "directory": str(directory),
                "ok": not errors,
                "problems": [
                    p.model_dump(mode="json") if hasattr(p, "model_dump") else vars(p)
                    for p in problems
                ],
            }
        )
    else:
        for p in problems:
            ui.out.print(f"{p.level}: {p}", markup=False)
        ui.out.print(
            f"{directory}: {len(errors)} error(s), {len(problems) - len(errors)} "
            f"warning(s)" + ("" if errors else " — policies OK"),
            markup=False,
        )
    return 1 if errors else 0
