"""``konfig tokens``: API tokens and the service accounts that own them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from konfig.cli.output import Output, OutputOption, dump, fail, note, out, show
from konfig.cli.session import api, konfig

tokens_app = typer.Typer(help="API tokens (kfg_…) and service accounts.", no_args_is_help=True)
accounts_app = typer.Typer(help="Service accounts: machine identities.", no_args_is_help=True)
tokens_app.add_typer(accounts_app, name="service-accounts")

TOKEN_COLUMNS = ["id", "name", "hint", "owner", "scopes", "status", "expires_at", "last_used_at"]
ACCOUNT_COLUMNS = ["id", "name", "description", "created_at"]
PERMISSIONS = ("read", "write", "secrets")


def parse_scope(spec: str) -> dict[str, Any]:
    """``payments/*:read,secrets`` → ``{"namespaces": "payments/*", "permissions": [...]}``."""
    pattern, sep, permissions = spec.rpartition(":")
    if not sep or not pattern:
        raise typer.BadParameter(f"{spec!r}: write PATTERN:PERMISSIONS, e.g. 'payments/*:read'")
    chosen = [p.strip() for p in permissions.split(",") if p.strip()]
    if not chosen or any(p not in PERMISSIONS for p in chosen):
        raise typer.BadParameter(
            f"{spec!r}: permissions are read, secrets (with read: secret values decrypted) "
            "and write"
        )
    return {"namespaces": pattern, "permissions": chosen}


def scopes_text(token: dict[str, Any]) -> str:
    return " ".join(f"{s['namespaces']}:{','.join(s['permissions'])}" for s in token["scopes"])


@tokens_app.command("create")
@api
def create(
    name: str,
    scope: Annotated[
        list[str],
        typer.Option(
            help="PATTERN:PERMISSIONS, e.g. 'payments/*:read' or 'payments/*:read,secrets' "
            "(repeatable; without secrets, secret values are masked)"
        ),
    ],
    service_account: Annotated[
        str | None, typer.Option(help="The service account that owns it (default: you)")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a token; its secret is printed once, alone on stdout."""
    created = konfig().tokens.create(
        name,
        [parse_scope(s) for s in scope],
        service_account=service_account,
        expires_in_days=expires_in_days,
    )
    if output is not Output.table:
        dump(created, output)
        return
    out.print(created["token"], markup=False)
    note(f"token {created['name']} ({created['id']}): {scopes_text(created)}; shown only this once")


@tokens_app.command("list")
@api
def list_tokens(
    service_account: Annotated[str | None, typer.Option(help="Only this one's tokens")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Also revoked tokens")] = False,
    output: OutputOption = Output.table,
) -> None:
    """List tokens, never their secrets."""
    found = konfig().tokens.list(service_account=service_account, include_revoked=all_)
    if output is Output.table:
        found = [t | {"scopes": scopes_text(t)} for t in found]
    show(found, output, TOKEN_COLUMNS)


def _token_id(token: str) -> str:
    try:
        return str(uuid.UUID(token))
    except ValueError:
        pass
    matches = [t for t in konfig().tokens.list() if t["name"] == token]
    if len(matches) != 1:
        reason = "no active token" if not matches else f"{len(matches)} active tokens"
        raise fail(f"{reason} named {token!r}: give its id (konfig tokens list)")
    return str(matches[0]["id"])


@tokens_app.command("revoke")
@api
def revoke(
    token: Annotated[str, typer.Argument(help="The token's id, or its unique name")],
) -> None:
    """Revoke a token: every replica refuses it from now on."""
    konfig().tokens.revoke(_token_id(token))
    note(f"revoked {token}")


@accounts_app.command("create")
@api
def create_account(
    name: str,
    description: Annotated[str, typer.Option(help="What it runs")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Create a service account."""
    show(
        konfig().tokens.create_service_account(name, description=description),
        output,
        ACCOUNT_COLUMNS,
    )


@accounts_app.command("list")
@api
def list_accounts(output: OutputOption = Output.table) -> None:
    """List service accounts."""
    show(konfig().tokens.list_service_accounts(), output, ACCOUNT_COLUMNS)


@accounts_app.command("delete")
@api
def delete_account(name: str) -> None:
    """Delete a service account; its tokens stop working."""
    konfig().tokens.delete_service_account(name)
    note(f"deleted {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
