"""Server-side commands: they use the server's own code and database directly."""

from __future__ import annotations

import asyncio
import getpass
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from konfig.settings import ConfigurationError, get_settings

console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (KONFIG_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (KONFIG_PORT)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving")] = True,
) -> None:
    """Apply migrations and serve the API, UI and docs."""
    import uvicorn

    from konfig.app import create_app
    from konfig.db.migrate import upgrade
    from konfig.settings import check_production

    settings = get_settings()
    try:
        check_production(settings)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate and settings.migrate_on_start:
        asyncio.run(upgrade(settings.resolved_database_url))
    host = host or settings.host
    port = port or settings.port
    console.print(f"Konfig serving on http://{host}:{port} (docs at /docs)")
    # uvicorn re-raises the signal it stopped on once it has shut down gracefully; a clean
    # SIGTERM stop (Kubernetes, systemd) should then exit 0, not die of the signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "konfig.app:create_app" if workers > 1 else create_app(settings),
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
        log_level="warning",
        timeout_graceful_shutdown=getattr(settings, "shutdown_grace_seconds", 20),
    )


db_app = typer.Typer(help="Database administration.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations (safe to run while other replicas start: they take turns)."""
    from konfig.db.migrate import upgrade

    settings = get_settings()
    before, after = asyncio.run(upgrade(settings.resolved_database_url, revision))
    console.print(f"database at {after} (was {before or 'empty'})")


users_app = typer.Typer(help="User administration on the server.", no_args_is_help=True)


@users_app.command("create-superuser")
def create_superuser(
    email: Annotated[str, typer.Option(prompt=True)],
    tenant: Annotated[str, typer.Option(help="Tenant to create the superuser in")] = "konfig-admin",
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
) -> None:
    """Create a platform superuser, who administers every tenant."""
    from konfig.cli.superuser import create

    if password is None:
        if not sys.stdin.isatty():
            raise _fail("--password is required when not run interactively", 2)
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            raise _fail("the passwords differ", 2)
    try:
        user_id = asyncio.run(create(get_settings(), email=email, password=password, tenant=tenant))
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"superuser {email} created (id {user_id}) in tenant {tenant}")


def import_tree(
    directory: Annotated[
        Path, typer.Argument(help="Tree root: files are read from DIR/<tenant>/<namespace>.yaml")
    ],
    tenant: Annotated[str, typer.Option(help="The tenant to import into (its name)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes, write nothing")] = (
        False
    ),
    mode: Annotated[
        str, typer.Option(help="replace: delete keys a file leaves out (secrets kept); merge")
    ] = "replace",
) -> None:
    """Load a YAML tree (the mirror's layout) into the database: one revision per namespace."""
    from konfig.revisions.tree import TreeError
    from konfig.revisions.tree import import_tree as run

    if mode not in ("merge", "replace"):
        raise _fail("--mode is merge or replace", 2)
    try:
        changed = asyncio.run(
            run(
                get_settings(),
                root=directory,
                tenant=tenant,
                mode=mode,  # type: ignore[arg-type]
                dry_run=dry_run,
                echo=typer.echo,
            )
        )
    except TreeError as exc:
        for problem in exc.problems:
            console.print(f"  {problem}")
        raise _fail(f"{exc}; nothing was imported") from exc
    verb = "would change" if dry_run else "changed"
    console.print(f"{changed} namespace(s) {verb}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command("import-tree")(import_tree)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
