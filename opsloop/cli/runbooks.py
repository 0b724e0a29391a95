"""`opsloop index` and `opsloop runbooks search`: build the runbook index and query it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from opsloop.agents.markdown import atomic_write
from opsloop.cli.render import Ui, UserError
from opsloop.models.catalog import SpecialistName
from opsloop.settings import Settings

if TYPE_CHECKING:
    from opsloop.tools.runbook_index import RunbookIndex
from opsloop.tools.retrieval.names import CHOICES
from opsloop.tools.retrieval.query import query_from_line


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _index_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runbooks", type=Path, action="append", metavar="DIR",
                   help="runbook folder (repeatable; default: the configured runbook dirs)")
    p.add_argument("--backend", choices=CHOICES, default=None,
                   help="embedding backend (default: settings, env OPSLOOP_EMBEDDING_BACKEND)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common],
                       help="index runbook folders (only changed files are re-embedded)")
    _index_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=index_cmd)

    r = sub.add_parser("runbooks", parents=[common], help="runbook retrieval tools")
    rsub = r.add_subparsers(dest="runbooks_command", metavar="SUBCOMMAND", required=True)
    s = rsub.add_parser("search", parents=[common], help="find the runbooks for a query or alert")
    s.add_argument("query", nargs="?", help="query text (an alert's name, labels and text)")
    s.add_argument("--k", type=_positive, default=5, help="hits per query (default 5)")
    s.add_argument("--batch", metavar="FILE",
                   help="one query per line ('-' for stdin); a line may be an Alertmanager "
                        "alert as JSON; prints one JSON line of hits per query")
    s.add_argument("--specialist", default=None, help="only runbooks this specialist follows")
    s.add_argument("--service", default=None, help="only runbooks that apply to this service")
    _index_options(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=search_cmd)


# Which folders `opsloop index` last built the work dir's index from: a search without
# --runbooks searches that index, not silently the configured folders.
_BUILT_FROM = "folders.json"


def _built_from(settings: Settings) -> list[Path] | None:
    try:
        folders = json.loads((settings.index_dir / _BUILT_FROM).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        return None
    return [Path(f) for f in folders] or None


def _folders(args: argparse.Namespace, settings: Settings) -> list[Path]:
    if args.runbooks:
        return [d.resolve() for d in args.runbooks]
    if args.handler is search_cmd and (built := _built_from(settings)) is not None:
        return built
    return list(settings.runbook_dirs)


def open_index(args: argparse.Namespace, settings: Settings, ui: Ui) -> RunbookIndex:
    """The persisted index, refreshed from the folders, with progress on stderr."""
    dirs = _folders(args, settings)
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise UserError(f"not a directory: {', '.join(missing)}")
    settings = settings.model_copy(update={"runbook_dirs": dirs})
    with Progress(TextColumn("indexing runbooks"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), console=ui.err, transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, file: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(file).name)

        from opsloop.tools.runbook_index import RunbookIndex  # chromadb: only when used

        return RunbookIndex.from_settings(settings, backend=args.backend, progress=progress)


def index_cmd(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    try:
        index = open_index(args, settings, ui)
    except UserError as exc:
        ui.err.print(f"opsloop index: {exc}", markup=False, style="red")
        return 2
    atomic_write(settings.index_dir / _BUILT_FROM,
                 json.dumps([str(d.resolve()) for d in index.runbook_dirs]) + "\n")
    counts = index.last_counts
    problems = index.problems()
    if args.json:
        ui.json({"backend": index.backend.describe(), "runbooks": len(index.runbooks()),
                 "chunks": index.chunk_count(), **counts,
                 "problems": [p.model_dump() for p in problems]})
    else:
        ui.table(f"Runbook index ({index.backend.describe()})",
                 ["runbooks", "chunks", "indexed", "unchanged", "removed", "broken"],
                 [[str(len(index.runbooks())), str(index.chunk_count()),
                   *(str(counts[k]) for k in ("indexed", "unchanged", "removed", "broken"))]])
        for p in problems:
            ui.err.print(f"error: {p}", markup=False, style="red")
    return 1 if problems else 0


def search_cmd(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    if (args.query is None) == (args.batch is None):
        ui.err.print("opsloop runbooks search: give a QUERY or --batch FILE (not both)",
                     markup=False, style="red")
        return 2
    if args.query is not None and not args.query.strip():
        ui.err.print("opsloop runbooks search: the query is empty; give an alert's name, "
                     "labels or text", markup=False, style="red")
        return 2
    known = get_args(SpecialistName)
    if args.specialist is not None and args.specialist not in known:
        ui.err.print(f"opsloop runbooks search: no specialist {args.specialist!r}; "
                     f"known: {', '.join(known)}", markup=False, style="red")
        return 2
    if args.batch not in (None, "-") and not Path(args.batch).is_file():
        ui.err.print(f"opsloop runbooks search: no such file: {args.batch}", markup=False,
                     style="red")
        return 2
    try:
        index = open_index(args, settings, ui)
    except UserError as exc:
        ui.err.print(f"opsloop runbooks search: {exc}", markup=False, style="red")
        return 2
    if args.batch is not None:
        stream = sys.stdin if args.batch == "-" else open(args.batch, encoding="utf-8")  # noqa: SIM115
        try:
            for line in stream:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                answer = index.answer(query_from_line(line), args.k, args.specialist,
                                      service=args.service)
                print(json.dumps(answer.model_dump(mode="json")), flush=True)
        finally:
            if stream is not sys.stdin:
                stream.close()
        return 0
    answer = index.answer(args.query, args.k, args.specialist, service=args.service)
    if args.json:
        ui.json(answer)
        return 0
    folders = ", ".join(str(d) for d in index.runbook_dirs)
    ui.err.print(f"searched the index of {folders}", markup=False)
    ui.table(f"Runbooks for {args.query!r} ({answer.backend})",
             ["#", "runbook", "score", "section", "alerts", "file"],
             [[str(n), h.runbook_id + ("" if h.confident else " (weak)"), f"{h.score:.2f}",
               h.section, ", ".join(h.matched_alerts), h.file]
              for n, h in enumerate(answer.hits, start=1)])
    if answer.no_match:
        ui.out.print(f"no good match (best score below {answer.threshold:.2f}): "
                     "this looks like a failure no runbook covers", markup=False)
    return 0
