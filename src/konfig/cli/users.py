"""``konfig users`` and ``konfig sso``: people, their grants, and single sign-on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from konfig.cli.output import Output, OutputOption, fail, note, show
from konfig.cli.server import create_superuser
from konfig.cli.session import api, konfig

users_app = typer.Typer(
    help="People and their grants (roles per namespace); the first superuser.",
    no_args_is_help=True,
)
# On the server, with the database's own settings, not through the API: the one way in before
# anybody can log in.
users_app.command("create-superuser")(create_superuser)
sso_app = typer.Typer(help="Single sign-on through an OpenID provider.", no_args_is_help=True)
groups_app = typer.Typer(help="Groups: grants their members hold.", no_args_is_help=True)
GROUP_COLUMNS = ["name", "grants", "members", "description"]
USER_COLUMNS = ["email", "role", "grants", "is_active", "last_login_at"]
SSO_COLUMNS = ["issuer", "client_id", "allowed_domains", "strict", "password_login", "login_url"]
ROLES = ("viewer", "editor", "admin", "owner")

GrantOption = Annotated[
    list[str],
    typer.Option(
        "--grant", help="ROLE:PATTERN, e.g. 'editor:payments/**' (repeatable)", show_default=False
    ),
]


def parse_grant(spec: str) -> dict[str, str]:
    """``editor:payments/**`` → ``{"role": "editor", "namespaces": "payments/**"}``."""
    role, sep, pattern = spec.partition(":")
    if not sep or role not in ROLES or not pattern:
        raise typer.BadParameter(
            f"{spec!r}: write ROLE:PATTERN with a role of {', '.join(ROLES)}, e.g. "
            "'editor:payments/**'"
        )
    return {"role": role, "namespaces": pattern}


def grants_text(user: dict[str, Any]) -> str:
    return " ".join(f"{g['role']}:{g['namespaces']}" for g in user["grants"])


def _shown(users: list[dict[str, Any]], output: Output) -> list[dict[str, Any]]:
    if output is Output.table:
        return [u | {"grants": grants_text(u)} for u in users]
    return users


@users_app.command("list")
@api
def list_users(output: OutputOption = Output.table) -> None:
    """List the organisation's users and their grants."""
    show(_shown(konfig().users.list(), output), output, USER_COLUMNS)


@users_app.command("add")
@api
def add(
    email: str,
    grant: GrantOption = [],  # noqa: B006 - typer reads the default, never mutates it
    role: Annotated[str | None, typer.Option(help="A role on every namespace")] = None,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Add a user with a role, or with grants."""
    if role is not None and grant:
        raise fail("give --role or --grant, not both", 2)
    password = password or typer.prompt("Their first password", hide_input=True)
    grants = [parse_grant(g) for g in grant] or None
    created = konfig().users.create(email, password, role=role, grants=grants)
    show(_shown([created], output)[0], output, USER_COLUMNS)


@users_app.command("grants")
@api
def set_grants(
    email: str,
    grant: GrantOption = [],  # noqa: B006 - typer reads the default, never mutates it
    output: OutputOption = Output.table,
) -> None:
    """Replace a user's grants (none given: show them)."""
    client = konfig()
    user = (
        client.users.set_grants(email, [parse_grant(g) for g in grant])
        if grant
        else (client.users.get(email))
    )
    show(_shown([user], output)[0], output, USER_COLUMNS)


@users_app.command("groups")
@api
def set_user_groups(
    email: str,
    group: Annotated[list[str], typer.Option("--group", help="A group name (repeatable)")] = [],  # noqa: B006
    none: Annotated[bool, typer.Option("--none", help="Leave every group")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Replace the groups a user belongs to."""
    if not group and not none:
        raise fail("give --group NAME (repeatable) or --none", 2)
    user = konfig().groups.set_members_groups(email, group)
    show(_shown([user], output)[0], output, [*USER_COLUMNS, "groups"])


def _group_rows(groups: list[dict[str, Any]], output: Output) -> list[dict[str, Any]]:
    if output is Output.table:
        return [g | {"grants": grants_text(g), "members": " ".join(g["members"])} for g in groups]
    return groups


@groups_app.command("list")
@api
def list_groups(output: OutputOption = Output.table) -> None:
    """List groups, their grants and members."""
    show(_group_rows(konfig().groups.list(), output), output, GROUP_COLUMNS)


@groups_app.command("create")
@api
def create_group(
    name: str,
    grant: GrantOption = [],  # noqa: B006 - typer reads the default, never mutates it
    description: Annotated[str, typer.Option()] = "",
    output: OutputOption = Output.table,
) -> None:
    """Make a group with grants."""
    made = konfig().groups.create(name, [parse_grant(g) for g in grant], description=description)
    show(_group_rows([made], output)[0], output, GROUP_COLUMNS)


@groups_app.command("grants")
@api
def group_grants(
    name: str,
    grant: GrantOption = [],  # noqa: B006 - typer reads the default, never mutates it
    output: OutputOption = Output.table,
) -> None:
    """Replace a group's grants."""
    changed = konfig().groups.set_grants(name, [parse_grant(g) for g in grant])
    show(_group_rows([changed], output)[0], output, GROUP_COLUMNS)


@groups_app.command("delete")
@api
def delete_group(name: str) -> None:
    """Delete a group; its members lose what it granted."""
    konfig().groups.delete(name)
    note(f"deleted {name}")


@sso_app.command("show")
@api
def sso_show(output: OutputOption = Output.table) -> None:
    """The organisation's single sign-on settings (the client secret is never shown)."""
    show(konfig().sso.get(), output, SSO_COLUMNS)


@sso_app.command("set")
@api
def sso_set(
    settings: Annotated[
        Path, typer.Argument(help="A YAML or JSON file: issuer, client_id, allowed_domains, …")
    ],
    client_secret: Annotated[
        str | None,
        typer.Option(envvar="KONFIG_SSO_CLIENT_SECRET", help="Kept as stored when omitted"),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Set the provider and the claim-to-grant mapping from a file (owners)."""
    try:
        loaded = yaml.safe_load(settings.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"cannot read {settings}: {exc}", 2) from None
    if not isinstance(loaded, dict):
        raise fail(f"{settings} must hold a mapping of settings", 2)
    if client_secret is not None:
        loaded["client_secret"] = client_secret
    answer = konfig().sso.put(loaded)
    show(answer, output, SSO_COLUMNS)
    note(f"register {answer['redirect_uri']} as the redirect URI at the provider")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(sso_app, name="sso")
    app.add_typer(groups_app, name="groups")
