"""``konfig clients``: who reads a namespace and which revision each instance holds, the stale
ones, traffic, unread keys, and a token's use (the server's usage analytics)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from konfig.cli.output import Output, OutputOption, out, show
from konfig.cli.session import api, konfig

clients_app = typer.Typer(
    help="Usage analytics: instances and the revision each holds, stale ones, unread keys.",
    no_args_is_help=True,
)
NamespaceArg = Annotated[str, typer.Argument(help="The namespace, e.g. payments/production")]
PeriodOption = Annotated[str, typer.Option(help="day (hourly) or week (6-hourly)")]
CLIENT_COLUMNS = ["instance", "revision", "state", "sdk", "actor", "last_seen_at", "last_pushed_at"]


def _rows(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        | {
            "instance": c["instance"] or f"{c['address']} (address)",
            "state": "current" if c["current"] else "stale" if c["stale"] else "updating",
        }
        for c in clients
    ]


@clients_app.command("list")
@api
def list_clients(
    namespace: NamespaceArg,
    stale: Annotated[bool, typer.Option("--stale", help="Only the stale instances")] = False,
    window_hours: Annotated[float, typer.Option(help="Instances seen within these hours")] = 24,
    output: OutputOption = Output.table,
) -> None:
    """The headline ("27 of 30 instances on revision 18; 3 behind since …") and the instances."""
    found = konfig().analytics.clients(namespace, window_hours=window_hours)
    if output is not Output.table:
        show(found, output, [])
        return
    out.print(found["headline"], markup=False)
    show(_rows(found["stale_clients" if stale else "items"]), output, CLIENT_COLUMNS)


@clients_app.command("keys")
@api
def keys(
    namespace: NamespaceArg,
    unread: Annotated[bool, typer.Option("--unread", help="Only the unread keys")] = False,
    unread_days: Annotated[
        float | None, typer.Option(help="Unread after these days (the server's setting else)")
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """The namespace's keys with the last time a resolved read delivered each."""
    found = konfig().analytics.key_reads(namespace, unread_days=unread_days)
    rows = [row for row in found["items"] if row["unread"] or not unread]
    show(rows, output, ["key", "last_read_at", "unread"])


@clients_app.command("unread")
@api
def unread(
    unread_days: Annotated[
        float | None, typer.Option(help="Unread after these days (the server's setting else)")
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Every key of your tenant no resolved read delivered lately: candidates for clean-up."""
    found = konfig().analytics.unread_keys(unread_days=unread_days)
    show(found["items"], output, ["namespace", "key", "last_read_at"])


@clients_app.command("traffic")
@api
def traffic(
    namespace: NamespaceArg, period: PeriodOption = "day", output: OutputOption = Output.table
) -> None:
    """Reads, 304s and pushes of the namespace per hour (day) or six hours (week)."""
    found = konfig().analytics.traffic(namespace, period=period)
    if output is Output.table:
        show(found["buckets"], output, ["start", "reads", "not_modified", "pushes"])
    else:
        show(found, output, [])


@clients_app.command("token")
@api
def token(
    token_id: Annotated[str, typer.Argument(help="The token's id")],
    period: PeriodOption = "day",
    output: OutputOption = Output.table,
) -> None:
    """A token's use: the namespaces it read, with requests and instances, and its last use."""
    found = konfig().analytics.token_usage(token_id, period=period)
    if output is not Output.table:
        show(found, output, [])
        return
    out.print(f"last used: {found['last_used_at'] or 'never'}", markup=False)
    show(found["namespaces"], output, ["namespace", "requests", "instances", "last_read_at"])


def register(app: typer.Typer) -> None:
    app.add_typer(clients_app, name="clients")
