"""`opsloop policy check [DIR] [--allow-unsafe]`: validate policy files; exit 1 on any error."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from opsloop.cli.render import Ui
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
    c.add_argument(
        "--allow-unsafe",
        action="store_true",
        help="report unsafe settings (e.g. SEV1 actions on auto) as allowed warnings, not "
        "errors; to run the loop with them, set OPSLOOP_ALLOW_UNSAFE_POLICIES=1",
    )
    c.set_defaults(handler=check)


def check(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.policy import check_policies  # the policy schema: only for this command

    directory = args.dir or settings.policies_dir
    problems = check_policies(directory, allow_unsafe=args.allow_unsafe)
    errors = [p for p in problems if p.level == "error"]
    unsafe = [p for p in problems if p.unsafe]
    if args.json:
        ui.json(
            {
                "directory": str(directory),
                "ok": not errors,
                "allow_unsafe": args.allow_unsafe,
                "problems": [vars(p) for p in problems],
            }
        )
    else:
        for p in problems:
            # str(p) already says "warning: ..."; only errors need their level in front.
            ui.out.print(f"error: {p}" if p.level == "error" else str(p), markup=False)
        if errors:
            verdict = ""
        elif unsafe:
            allowed = sum(p.allowed for p in unsafe)
            verdict = f" — usable, but {len(unsafe)} unsafe setting(s)" + (
                f", {allowed} allowed by --allow-unsafe" if allowed else ""
            )
        else:
            verdict = " — policies OK"
        ui.out.print(
            f"{directory}: {len(errors)} error(s), {len(problems) - len(errors)} "
            f"warning(s){verdict}",
            markup=False,
        )
    return 1 if errors else 0
