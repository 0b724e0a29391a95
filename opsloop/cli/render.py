"""Shared output helpers: tables for people, JSON for machines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table


class UserError(Exception):
    """Bad input from the person at the terminal: shown as a message, never a traceback."""


# Columns holding ids people paste into the next command: shown whole at any width.
WHOLE_COLUMNS = frozenset({"id", "incident", "request", "approval"})
# Piped output has no terminal width; rich would wrap tables at 80 columns and fold every cell.
PIPED_WIDTH = 160


def _stdout() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PIPED_WIDTH)
    return console


@dataclass
class Ui:
    out: Console = field(default_factory=_stdout)
    err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    def json(self, data: Any) -> None:
        """Machine output goes to stdout as plain JSON, never through rich markup."""
        print(json.dumps(to_jsonable(data), indent=2, sort_keys=False, default=str))

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        for n, column in enumerate(columns):
            if column in WHOLE_COLUMNS:  # an id is copied into the next command: never folded
                widest = max([len(column), *(len(str(r[n])) for r in rows if n < len(r))])
                table.add_column(column, no_wrap=True, min_width=widest)
            else:
                table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self.out.print(table)


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [to_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data
