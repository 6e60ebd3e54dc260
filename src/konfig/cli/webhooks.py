"""``konfig webhooks``: endpoints that hear of changes, their secrets and delivery logs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from konfig.cli.output import Output, OutputOption, dump, note, out, show
from konfig.cli.session import api, konfig

webhooks_app = typer.Typer(
    help="Webhooks: signed notifications of changes (Standard Webhooks).", no_args_is_help=True
)

WEBHOOK_COLUMNS = ["id", "url", "events", "namespaces", "enabled", "disabled_reason"]
DELIVERY_COLUMNS = ["id", "event_type", "status", "attempts", "last_status", "created_at"]
EVENTS = (
    "config.changed, flag.changed, namespace.created, namespace.deleted, token.revoked, "
    "backup.failed, change_request.opened|approved|rejected|merged|bypassed"
)


def _row(webhook: dict[str, Any]) -> dict[str, Any]:
    return webhook | {"events": ",".join(webhook["events"])}


@webhooks_app.command("create")
@api
def create(
    url: str,
    event: Annotated[list[str], typer.Option(help=f"An event type (repeatable): {EVENTS}")],
    namespaces: Annotated[str, typer.Option(help="A namespace pattern, e.g. payments/**")] = "**",
    description: Annotated[str, typer.Option(help="What it is for")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Subscribe URL to events; the signing secret is printed once, alone on stdout."""
    created = konfig().webhooks.create(url, event, namespaces=namespaces, description=description)
    if output is not Output.table:
        dump(created, output)
        return
    out.print(created["secret"], markup=False)
    note(f"webhook {created['id']} → {created['url']}; its secret is shown only this once")


@webhooks_app.command("list")
@api
def list_webhooks(output: OutputOption = Output.table) -> None:
    """List the tenant's webhooks."""
    found = konfig().webhooks.list()
    show([_row(w) for w in found] if output is Output.table else found, output, WEBHOOK_COLUMNS)


@webhooks_app.command("update")
@api
def update(
    webhook_id: str,
    url: Annotated[str | None, typer.Option(help="A new URL")] = None,
    event: Annotated[list[str] | None, typer.Option(help="Event types (repeatable)")] = None,
    namespaces: Annotated[str | None, typer.Option(help="A namespace pattern")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Change a webhook (``--enable`` also clears why it was disabled)."""
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("url", url),
            ("events", event),
            ("namespaces", namespaces),
            ("description", description),
            ("enabled", enable),
        )
        if value is not None
    }
    updated = konfig().webhooks.update(webhook_id, **changes)
    show(_row(updated) if output is Output.table else updated, output, WEBHOOK_COLUMNS)


@webhooks_app.command("delete")
@api
def delete(webhook_id: str) -> None:
    """Delete a webhook and its delivery log."""
    konfig().webhooks.delete(webhook_id)
    note(f"deleted webhook {webhook_id}")


@webhooks_app.command("rotate-secret")
@api
def rotate_secret(webhook_id: str) -> None:
    """A new signing secret, printed once; the old one keeps signing for 24 hours."""
    rotated = konfig().webhooks.rotate_secret(webhook_id)
    out.print(rotated["secret"], markup=False)
    note(f"the previous secret signs too until {rotated['previous_secret_expires_at']}")


@webhooks_app.command("test")
@api
def test(webhook_id: str) -> None:
    """Send a webhook.test event."""
    queued = konfig().webhooks.test(webhook_id)
    note(f"queued {queued['message_id']} (konfig webhooks deliveries {webhook_id})")


@webhooks_app.command("deliveries")
@api
def deliveries(
    webhook_id: str,
    status: Annotated[str | None, typer.Option(help="pending, succeeded or failed")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    output: OutputOption = Output.table,
) -> None:
    """The delivery log, newest first."""
    found = konfig().webhooks.deliveries(webhook_id, status=status, since=since, limit=limit)
    if output is Output.table:
        found = [
            d
            | {
                "last_status": (d["log"][-1]["status_code"] or d["log"][-1]["error"])
                if d["log"]
                else ""
            }
            for d in found
        ]
    show(found, output, DELIVERY_COLUMNS)


@webhooks_app.command("redeliver")
@api
def redeliver(webhook_id: str, delivery_id: str) -> None:
    """Send a delivery again now, with the same webhook-id."""
    queued = konfig().webhooks.redeliver(webhook_id, delivery_id)
    note(f"queued {queued['message_id']} again")


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
