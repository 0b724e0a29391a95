"""`opsloop slo status`: every SLO's burn rate per SRE Workbook window pair, the error budget
left, and whether the change freeze applies — measured on Prometheus or a simulation."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

if TYPE_CHECKING:  # the policy schema is loaded by the handler, not by every command
    from opsloop.policy.health import SloStatus
    from opsloop.tools.protocols import Production


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("slo", parents=[common], help="SLOs: burn rates and error budgets")
    verbs = p.add_subparsers(dest="slo_command", metavar="VERB", required=True)
    s = verbs.add_parser("status", parents=[common],
                         help="burn rate per window pair, budget left, change freeze")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--prometheus", metavar="URL",
                       help="measure on this Prometheus (default: OPSLOOP_PROMETHEUS_URL)")
    where.add_argument("--environment", metavar="REF",
                       help="measure on an environment: sim:<id> or remote:sim=<url>,...")
    where.add_argument("--scenario", metavar="NAME",
                       help="measure on a fresh simulation of this scenario")
    s.add_argument("--minutes", type=int, default=0,
                   help="with --scenario: simulate this many minutes first")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=status)


def _production(args: argparse.Namespace, settings: Settings) -> tuple[str, Production]:
    from opsloop.environments import open_environment, open_prometheus

    if args.scenario:
        from opsloop.simulator import SimEnvironment, UnknownScenarioError

        if args.minutes < 0:
            raise UserError("--minutes must not be negative")
        try:
            env = SimEnvironment.create(args.scenario, settings.seed)
        except UnknownScenarioError as exc:
            raise UserError(str(exc)) from None
        env.wait(args.minutes)
        return f"simulation {args.scenario} at {env.now():%H:%M}", env
    if args.environment:
        return args.environment, open_environment(args.environment, settings)
    url = args.prometheus or settings.prometheus_url
    if not url:
        raise UserError("say where to measure: --prometheus URL (or OPSLOOP_PROMETHEUS_URL), "
                        "--environment REF, or --scenario NAME")
    return url, open_prometheus(url, settings)


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def status(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.policy import load_policies
    from opsloop.policy.health import budget_exhausted, slo_status

    policies = load_policies(settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)
    source, production = _production(args, settings)
    windows = policies.health.burn_rate_windows
    rows: list[tuple[SloStatus, bool]] = []
    try:
        for slo in policies.health.slos:
            rows.append((slo_status(slo, production, windows),
                         budget_exhausted(slo.service, policies, production)))
    finally:
        production.close()
    if args.json:
        ui.json([{**s.model_dump(mode="json"), "change_freeze": freeze} for s, freeze in rows])
        return 0
    ui.table(
        f"SLOs on {source}",
        ["slo", "service", "objective", *[w.label for w in windows], "budget left", "freeze"],
        [
            [
                s.slo,
                s.service,
                f"{s.objective:.3%}",
                *[
                    f"{_burn(w.long_burn)} / {_burn(w.short_burn)}"
                    + (f" FIRING ({w.severity})" if w.firing else "")
                    for w in s.windows
                ],
                f"{s.budget_remaining:.1%}",
                "yes" if freeze else "no",
            ]
            for s, freeze in rows
        ],
    )
    ui.err.print(f"burn rate long / short window; an alert fires when both pass the factor "
                 f"({', '.join(f'{w.label} at {w.factor:g}x' for w in windows)})", markup=False)
    return 0
