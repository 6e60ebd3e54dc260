"""`konfig db`: migrations, and the PostgreSQL roles row-level security needs."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import Annotated

import typer
from rich.console import Console

from konfig.settings import get_settings

console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


async def check_serving_role(url: str) -> None:
    """Refuse a database role row-level security does not hold (konfig.db.roles)."""
    from sqlalchemy.pool import NullPool

    from konfig.db.engine import make_engine
    from konfig.db.roles import check_role, tenant_owned
    from konfig.models import metadata

    engine = make_engine(url, poolclass=NullPool)
    try:
        await check_role(engine, sorted(tenant_owned(metadata)), production=True)
    finally:
        await engine.dispose()


db_app = typer.Typer(help="Database administration.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations (safe to run while other replicas start: they take turns)."""
    from konfig.db.migrate import upgrade

    settings = get_settings()
    before, after = asyncio.run(upgrade(settings.resolved_migration_url, revision))
    console.print(f"database at {after} (was {before or 'empty'})")


@db_app.command("create-role")
def db_create_role(
    admin_url: Annotated[
        str,
        typer.Option(
            envvar="KONFIG_ADMIN_DATABASE_URL",
            help="A PostgreSQL superuser (or CREATEROLE) URL on Konfig's database",
        ),
    ],
    owner: Annotated[str, typer.Option(help="The role that owns the tables and migrates")] = (
        "konfig_owner"
    ),
    app: Annotated[str, typer.Option(help="The role Konfig serves as")] = "konfig_app",
    owner_password: Annotated[
        str | None, typer.Option(envvar="KONFIG_OWNER_PASSWORD", help="Prompted when omitted")
    ] = None,
    app_password: Annotated[
        str | None, typer.Option(envvar="KONFIG_APP_PASSWORD", help="Prompted when omitted")
    ] = None,
) -> None:
    """Create the two PostgreSQL roles row-level security needs: an owner and an app role.

    The owner gets the schema and Konfig's existing tables; the app role may read and write
    the rows of every table the owner makes, now and later, and nothing more. Safe to run again
    (it updates the roles and passwords). Then migrate with KONFIG_MIGRATION_DATABASE_URL as the
    owner and serve with KONFIG_DATABASE_URL as the app role.
    """
    from sqlalchemy.engine import make_url

    from konfig.db.roles import RoleError, Roles, create_roles
    from konfig.models import metadata
    from konfig.settings import async_database_url

    passwords = []
    for role, given in ((owner, owner_password), (app, app_password)):
        if given is None:
            if not sys.stdin.isatty():
                raise _fail(f"a password for {role} is required when not run interactively", 2)
            given = getpass.getpass(f"Password for {role}: ")
        if len(given) < 12:
            raise _fail(f"the password for {role} needs at least 12 characters", 2)
        passwords.append(given)
    url = async_database_url(admin_url)
    tables = sorted(t.name for t in metadata.sorted_tables)
    try:
        roles = Roles(owner, passwords[0], app, passwords[1])
        asyncio.run(create_roles(url, roles, tables))
    except RoleError as exc:
        raise _fail(str(exc), 2) from exc
    target = make_url(admin_url)
    for variable, role, password in (
        ("KONFIG_MIGRATION_DATABASE_URL", owner, passwords[0]),
        ("KONFIG_DATABASE_URL", app, passwords[1]),
    ):
        shown = target.set(drivername="postgresql", username=role, password=password)
        console.print(f"{variable}={shown.render_as_string(hide_password=True)}")
