"""How client commands print: ``--output table|json|yaml``, and errors without tracebacks."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped, Rich would assume 80 columns and cut cells short; scripts get whole rows instead.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 400)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table, json or yaml", case_sensitive=False)
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (the server's words, never markup) and exit with ``code``."""
    err.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code)


def note(message: str) -> None:
    err.print(Text(message, style="dim"))


def dump(value: Any, fmt: Output) -> None:
    if fmt is Output.yaml:
        out.print(yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip(), markup=False)
    else:
        out.print(json.dumps(value, indent=2, ensure_ascii=False), markup=False)


def cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def show(
    rows: Sequence[dict[str, Any]] | dict[str, Any],
    fmt: Output,
    columns: Sequence[str],
    *,
    title: str | None = None,
) -> None:
    """Rows as a table of ``columns``, or everything as JSON or YAML."""
    if fmt is not Output.table:
        dump(rows, fmt)
        return
    items = [rows] if isinstance(rows, dict) else list(rows)
    if not items:
        note("(none)")
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in items:
        table.add_row(*(Text(cell(row.get(column, ""))) for column in columns))
    out.print(table)
