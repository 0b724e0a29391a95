"""`opsloop vulns`: file scanner reports and feeds into the findings inbox, list and show
the merged findings, and print the OpenVEX the security agent recorded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from opsloop.cli.render import Ui, UserError
from opsloop.security.finding import Finding, IntakeError
from opsloop.security.inbox import filed, inbox_dir, ingest, read_inbox, vex_path
from opsloop.security.intake import read
from opsloop.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("vulns", parents=[common],
                       help="vulnerability findings: ingest scanner reports, list, show, VEX")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(handler=list_findings, json=False)
    verbs = p.add_subparsers(dest="vulns_command", metavar="VERB")
    i = verbs.add_parser("ingest", parents=[common],
                         help="file Trivy, Grype, OSV or CISA KEV JSON into the inbox")
    i.add_argument("files", nargs="+", type=Path, metavar="FILE")
    i.add_argument("--json", action="store_true")
    i.set_defaults(handler=ingest_files)
    ls = verbs.add_parser("list", parents=[common], help="the merged findings (default)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=list_findings)
    s = verbs.add_parser("show", parents=[common], help="one finding, by its ID or an alias")
    s.add_argument("id", metavar="ID")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=show)
    v = verbs.add_parser("vex", parents=[common],
                         help="the OpenVEX not_affected statements the security agent wrote")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=vex)


def _warn(ui: Ui, problems: list[Any]) -> None:
    for problem in problems:  # one bad record is named, never fatal to the rest
        ui.err.print(f"warning: {problem}", markup=False, style="yellow")


def ingest_files(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    try:
        stored = ingest(settings.state_dir, list(args.files))
    except IntakeError as exc:
        raise UserError(f"{exc} (nothing was filed)") from None
    problems = read(list(args.files)).problems
    intake = read_inbox(settings.state_dir)
    if args.json:
        ui.json({"filed": [str(p) for p in stored], "findings": len(intake.findings),
                 "problems": [str(p) for p in problems]})
        return 0
    _warn(ui, problems)
    ui.out.print(f"filed {len(stored)} file(s) in {inbox_dir(settings.state_dir)}; the inbox holds "
                 f"{len(intake.findings)} finding(s) from {len(filed(settings.state_dir))} "
                 "file(s). `opsloop agents run security` matches them with each service.",
                 markup=False)
    return 0


def _packages(f: Finding) -> str:
    """One name per package: scanners name the same purl differently (Trivy
    `group:artifact`, Grype the artifact alone); the most qualified name stands for it."""
    names: dict[str, str] = {}
    for a in f.affected:
        key = a.purl or a.name
        known = names.get(key)
        names[key] = a.name if known is None or len(a.name) > len(known) else known
    return ", ".join(sorted(set(names.values())))


def _fixes(f: Finding) -> str:
    fixes = sorted({v for a in f.affected for v in a.fixed_versions()})
    return ", ".join(fixes) or "none"


def list_findings(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    intake = read_inbox(settings.state_dir)
    if args.json:
        ui.json({"findings": intake.findings, "problems": [str(p) for p in intake.problems]})
        return 0
    _warn(ui, intake.problems)
    if not intake.findings:
        ui.out.print("no findings filed; `opsloop vulns ingest FILE` files a scanner report",
                     markup=False)
        return 0
    ui.table("Vulnerability findings (merged by ID and alias)",
             ["id", "cvss", "epss", "KEV", "packages", "fixed in", "sources"],
             [[f.id, "-" if f.cvss_score is None else f"{f.cvss_score:g}",
               "-" if f.epss is None else f"{f.epss:.2f}", "yes" if f.known_exploited else "",
               _packages(f), _fixes(f), str(len(f.sources))] for f in intake.findings])
    return 0


def show(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    intake = read_inbox(settings.state_dir)
    wanted = args.id.upper()
    found = next((f for f in intake.findings if wanted in {i.upper() for i in f.ids()}), None)
    if found is None:
        known = ", ".join(f.id for f in intake.findings) or "none filed"
        raise UserError(f"no finding {args.id!r} in the inbox; findings: {known}")
    if args.json:
        ui.json(found)
        return 0
    lines = [f"{found.id}" + (f"  (also {', '.join(found.aliases)})" if found.aliases else ""),
             found.summary,
             f"CVSS {found.cvss_score if found.cvss_score is not None else '-'}"
             + (f"  {found.cvss_vector}" if found.cvss_vector else "")
             + (f"  EPSS {found.epss:.3f}" if found.epss is not None else "")
             + (f"  known exploited (KEV due {found.kev_due_date or '?'})"
                if found.known_exploited else ""),
             "Affected:"]
    for a in found.affected:
        spans = "; ".join(f">={r.introduced}" + (f" <{r.fixed}" if r.fixed else "")
                          + (f" <={r.last_affected}" if r.last_affected else "")
                          for r in a.ranges)
        seen = f" (seen: {', '.join(a.versions)})" if a.versions else ""
        lines.append(f"  - {a.purl or a.name}: {spans or 'listed versions only'}{seen}")
    lines.append(f"Reported by: {', '.join(found.sources)}")
    ui.out.print("\n".join(lines), markup=False)
    return 0


def vex(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    path = vex_path(settings.work_dir)
    if not path.exists():
        raise UserError(f"no VEX yet at {path}: `opsloop agents run security` writes it")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    if args.json:
        ui.json(document)
        return 0
    statements = document.get("statements", [])
    ui.table(f"OpenVEX {document.get('@id', '')} ({len(statements)} not_affected)",
             ["vulnerability", "product", "justification", "why"],
             [[s["vulnerability"]["name"], s["products"][0]["@id"], s["justification"],
               s.get("impact_statement", "")] for s in statements])
    return 0
