"""``konfig``: server commands (serve, db, users) and, through the SDK, client commands."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from konfig.cli import client, server

app = typer.Typer(
    name="konfig",
    help="Konfig: typed, versioned, encrypted configuration for microservices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)
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
