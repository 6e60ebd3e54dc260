"""Server-side commands: they use the server's own code and database directly."""

from __future__ import annotations

import asyncio
import gc
import getpass
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from konfig.cli import database
from konfig.cli.output import Output, OutputOption
from konfig.settings import ConfigurationError, Settings, get_settings

console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    # One line however long (a path, say): scripts and logs read it whole.
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (KONFIG_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (KONFIG_PORT)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving")] = True,
) -> None:
    """Apply migrations and serve the API, UI and docs."""
    from konfig.db.engine import sqlite_path
    from konfig.db.sole_server import DatabaseServedElsewhere, sole_server
    from konfig.settings import check_production

    settings = get_settings()
    try:
        check_production(settings)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc
    if workers > 1 and sqlite_path(settings.resolved_database_url) is not None:
        raise _fail(
            f"--workers {workers}: SQLite serves one server process; run one worker, or use "
            "PostgreSQL to serve from several"
        )
    try:
        with sole_server(settings.resolved_database_url):
            _migrate_and_serve(settings, host, port, workers, migrate=migrate)
    except DatabaseServedElsewhere as exc:
        raise _fail(str(exc)) from exc


def _migrate_and_serve(
    settings: Settings, host: str | None, port: int | None, workers: int, *, migrate: bool
) -> None:
    # Start-up makes some hundred thousand objects that live as long as the process (modules,
    # models, routes), and the cyclic collector's passes over them as they were made cost
    # about a fifth of it. It is off until the server has started; then they are frozen out of
    # its way and it is back on (konfig.ops.server).
    gc.disable()
    import uvicorn

    from konfig.app import create_app
    from konfig.db import schema
    from konfig.logs import configure_logging, get_logger
    from konfig.ops.server import run

    # Once, before anything logs: uvicorn's and alembic's lines come out in the same format.
    configure_logging(log_format=settings.resolved_log_format, level=settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate and settings.migrate_on_start:
        url = settings.resolved_migration_url
        if not asyncio.run(schema.at_head(url)):  # Alembic is loaded only when there is work
            from konfig.db.migrate import upgrade

            asyncio.run(upgrade(url))
    if settings.is_production:  # the app checks again as it starts; here the refusal reads well
        try:
            asyncio.run(database.check_serving_role(settings.resolved_database_url))
        except ConfigurationError as exc:
            raise _fail(str(exc)) from exc
    host = host or settings.host
    port = port or settings.port
    get_logger("konfig.server").info("serving", url=f"http://{host}:{port}")
    # uvicorn re-raises the signal it stopped on once it has shut down gracefully; a clean
    # SIGTERM stop (Kubernetes, systemd) should then exit 0, not die of the signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # The drain comes out of the grace period, and so does the lifespan shutdown after it.
    in_flight_seconds = max(1, int(settings.shutdown_grace_seconds - settings.drain_seconds) - 1)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "log_config": None,  # logging is configured above
        "access_log": False,  # Konfig writes its own access line (konfig.ops.middleware)
        "server_header": False,  # names the server's software to anyone, and costs every answer
        "timeout_graceful_shutdown": in_flight_seconds,
    }
    if workers > 1:
        gc.enable()  # this process only supervises
        # Each worker process builds its own app (and logging); the SIGTERM drain with /ready
        # at 503 needs the single-process server below: scale out with replicas instead.
        uvicorn.run("konfig.ops.server:worker_app", factory=True, workers=workers, **options)
        return
    app = create_app(settings)
    if not run(app, uvicorn.Config(app, **options), drain_seconds=settings.drain_seconds):
        raise typer.Exit(3)


def create_superuser(
    email: Annotated[str, typer.Option(prompt=True)],
    tenant: Annotated[str, typer.Option(help="Tenant to create the superuser in")] = "konfig-admin",
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
) -> None:
    """Create a platform superuser, who administers every tenant."""
    # `konfig users create-superuser`, registered beside the other `users` commands
    # (konfig.cli.users); it opens the database itself, not the API.
    from konfig.cli.superuser import create

    if password is None and not sys.stdin.isatty():
        # Piped, as `login` reads it: the first line of standard input, so that the password
        # stays out of the process list and the shell's history.
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not password:
            raise _fail("no password: pipe it on standard input, or pass --password", 2)
    if password is None:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            raise _fail("the passwords differ", 2)
    try:
        user_id = asyncio.run(create(get_settings(), email=email, password=password, tenant=tenant))
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"superuser {email} created (id {user_id}) in tenant {tenant}")


keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Values per transaction")
    ] = 500,
) -> None:
    """Add a key and re-encrypt every stored value under it; servers keep serving meanwhile.

    With generated development keys, a new key is added to the key file (running servers pick
    it up within a second). With KONFIG_ENCRYPTION_KEYS, put the new key first in every
    replica's environment and roll them out, then run this to re-encrypt the old values.
    """
    import time

    from konfig.configs.rotation import RotationReport, prepare_keyring, reencrypt
    from konfig.db.engine import make_engine
    from konfig.db.migrate import upgrade

    settings = get_settings()
    url = settings.resolved_database_url
    asyncio.run(upgrade(settings.resolved_migration_url))
    keyring, added = prepare_keyring(settings)
    report = RotationReport(primary=keyring.primary, added=added)
    if added:
        console.print(f"added key {keyring.primary} to {settings.data_dir / 'encryption_keys'}")
        time.sleep(1.5)  # servers re-read the key file at most once a second
    else:
        console.print(
            f"re-encrypting under {keyring.primary}, the first key of KONFIG_ENCRYPTION_KEYS"
        )

    def progress(table: str, done: int, _: int) -> None:
        console.print(f"  {table}: {done} values scanned")

    async def run() -> None:
        engine = make_engine(url)
        try:
            await reencrypt(engine, keyring, report, progress, batch=batch_size)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print(
        f"done: {report.rewritten} values re-encrypted under {report.primary}, "
        f"{report.already_current} already were, {report.skipped_changed} changed meanwhile"
    )


backup_app = typer.Typer(
    help=(
        "Backups of a tenant. With --tenant: on this machine's database, as the server's "
        "operator; without: through the API, as the logged-in admin (konfig login)."
    ),
    no_args_is_help=True,
)
TenantOption = Annotated[
    str | None,
    typer.Option(help="Work on this server's database directly, on this tenant (by name)"),
]


def _run_backup(work: Any) -> Any:
    from konfig.errors import KonfigError

    try:
        return asyncio.run(work)
    except (KonfigError, ValueError) as exc:
        raise _fail(exc.message if isinstance(exc, KonfigError) else str(exc)) from exc


@backup_app.command("create")
def backup_create(tenant: TenantOption = None, output: OutputOption = Output.table) -> None:
    """Back up the tenant's namespaces and entries now."""
    from konfig.cli import backups, remote_backups

    if tenant is None:
        return remote_backups.create(output)

    made = _run_backup(backups.create(get_settings(), tenant=tenant))
    print(made.id)  # noqa: T201 - the id on stdout, for scripts
    console.print(
        f"backup {made.id} of tenant {tenant}: {made.namespace_count} namespaces, "
        f"{made.entry_count} entries, {made.size_bytes} bytes"
    )


@backup_app.command("list")
def backup_list(tenant: TenantOption = None, output: OutputOption = Output.table) -> None:
    """The tenant's backups, newest first, with whether each one's checksum holds."""
    from rich.table import Table

    from konfig.cli import backups, remote_backups

    if tenant is None:
        return remote_backups.list_backups(output)

    found = _run_backup(backups.list_backups(get_settings(), tenant=tenant))
    table = Table("id", "trigger", "namespaces", "entries", "bytes", "valid")
    for item in found:
        table.add_row(
            item.id,
            item.trigger or "-",
            str(item.namespace_count if item.valid else "-"),
            str(item.entry_count if item.valid else "-"),
            str(item.size_bytes),
            "yes" if item.valid else f"NO: {item.problem}",
        )
    Console().print(table)


@backup_app.command("restore")
def backup_restore(
    backup_id: Annotated[str, typer.Argument(help="The backup's id, from `konfig backup list`")],
    tenant: TenantOption = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would change; change nothing")] = False,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Only this one (repeatable)")
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Restore a backup: one new revision per namespace; history is kept."""
    from konfig.cli import backups, remote_backups

    if tenant is None:
        return remote_backups.restore(
            backup_id, dry_run=dry_run, namespaces=namespace, output=output
        )

    result = _run_backup(
        backups.restore(
            get_settings(),
            tenant=tenant,
            backup_id=backup_id,
            dry_run=dry_run,
            namespaces=namespace or None,
        )
    )
    out = Console()
    for ns in result.namespaces:
        state = "would be created" if ns.created and dry_run else "created" if ns.created else ""
        written = f"revision {ns.revision}" if ns.revision is not None else "no new revision"
        out.print(
            f"{ns.name}: +{len(ns.added)} -{len(ns.removed)} ~{len(ns.changed)} "
            f"={ns.unchanged} {state} {'' if dry_run else written}".rstrip()
        )
        for sign, changes in (("+", ns.added), ("-", ns.removed), ("~", ns.changed)):
            for change in changes:
                out.print(f"  {sign} {change.key}")
    verb = "would restore" if dry_run else "restored"
    console.print(f"{verb} backup {backup_id} into tenant {tenant}")


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
    app.add_typer(database.db_app, name="db")
    app.add_typer(keys_app, name="keys")
    app.add_typer(backup_app, name="backup")
