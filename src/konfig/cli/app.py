"""``konfig``: server commands (serve, db, users) and, through the SDK, client commands."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperOption

from konfig import __version__
from konfig.cli import client, server

# Typer's help names a value by its Python annotation (``<str>``, ``<list[str]>``, ``<bool>``
# on a flag); people read words. The one place help's type column is worded.
_WORDS = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "Path": "PATH",
}
_TYPED = re.compile(r"<(?:list\[)?([^\]>]+)\]?>")

Shown = Callable[[Any, Any], "str | None"]  # (the parameter, the click context)


def _in_words(shown: Shown) -> Shown:
    def worded(param: Any, ctx: Any) -> str | None:
        label = shown(param, ctx)
        if label is None or label == "<bool>":  # a flag takes no value
            return None
        return _TYPED.sub(lambda found: _WORDS.get(found[1], found[1]), label)

    return worded


TyperOption.display_type_rich = _in_words(TyperOption.display_type_rich)  # type: ignore[method-assign,assignment]
TyperArgument.display_type_rich = _in_words(TyperArgument.display_type_rich)  # type: ignore[method-assign,assignment]

app = typer.Typer(
    name="konfig",
    help="Konfig: typed, versioned, encrypted configuration for microservices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"konfig {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Konfig: typed, versioned, encrypted configuration for microservices."""


server.register(app)
client.register(app)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Client commands print what matters themselves; a line per HTTP request is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
