"""`opsloop ask "QUESTION"`: answers from incidents, timelines, approvals, postmortems,
signals and runbooks, citing the records used."""

from __future__ import annotations

import argparse
from typing import Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings
from opsloop.store import IncidentStore


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ask", parents=[common],
                       help="ask about incidents in plain words, e.g. \"why did checkout fail?\"")
    p.add_argument("question", nargs="+", help="the question (quote it, or not)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--offline", action="store_true",
                   help="answer from the records only, even when a model is configured")
    p.set_defaults(handler=ask)


def ask(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.agents.ask import answer
    from opsloop.agents.ask_answers import kind_of
    from opsloop.agents.ask_records import Records
    from opsloop.llm.config import model_client

    question = " ".join(args.question).strip()
    if not question:
        raise UserError("the question is empty; e.g. opsloop ask \"which incidents were SEV1?\"")
    store = IncidentStore(settings.state_dir / "opsloop.db")
    problems: list[str] = []
    try:
        incidents = store.incidents(problems)
    finally:
        store.close()
    for problem in problems:
        ui.err.print(f"warning: {problem}", markup=False, style="yellow")
    client = None if args.offline else model_client(settings)
    index = None
    if kind_of(question) == "runbook" or client is not None:
        from opsloop.tools.runbook_index import RunbookIndex  # chromadb: only when asked

        ui.err.print("loading the runbook index…", markup=False)
        index = RunbookIndex(settings.index_dir, settings.runbook_dirs)
    records = Records.load(incidents, settings.postmortems_dir, settings.signals_dir, index)
    result = answer(question, records, client)
    if args.json:
        ui.json(result)
        return 0
    ui.out.print(result.text, markup=False)
    if result.citations:
        ui.table(f"Records used ({result.kind}, answered by {result.answered_by})",
                 ["ref", "kind", "excerpt"],
                 [[c.ref, c.kind, c.excerpt] for c in result.citations])
    return 0
