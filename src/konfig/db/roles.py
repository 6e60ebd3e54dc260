"""PostgreSQL roles: the owner that migrates, the app role that serves, and the start-up check.

Row-level security (migration 0006) holds only for a role that does not own the tables (an
owner can switch it off) and is neither a superuser nor ``BYPASSRLS`` (those skip it). So
Konfig uses two roles: the owner, which creates and alters the tables (``konfig db upgrade``,
``KONFIG_MIGRATION_DATABASE_URL``), and the app role, which only reads and writes rows
(``KONFIG_DATABASE_URL``). ``konfig db create-role`` makes both; ``check_role`` refuses, in
production, to serve as anything else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

log = logging.getLogger("konfig.db")

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def tenant_owned(metadata: MetaData) -> dict[str, str]:
    """Every table holding a tenant's rows, with the column that names the tenant."""
    tables = {t.name: "tenant_id" for t in metadata.sorted_tables if "tenant_id" in t.columns}
    if "tenants" in metadata.tables:
        tables["tenants"] = "id"
    return tables


class RoleError(RuntimeError):
    """The database role Konfig was given is unsafe, or the roles could not be made."""


@dataclass(frozen=True)
class Roles:
    owner: str
    owner_password: str
    app: str
    app_password: str

    def __post_init__(self) -> None:
        for name in (self.owner, self.app):
            if not _ROLE_NAME.match(name):
                raise RoleError(f"{name!r} is not a role name Konfig makes: [a-z_][a-z0-9_]*")
        if self.owner == self.app:
            raise RoleError("the owner and the app role must be two different roles")


_SCRAM_ITERATIONS = 4096  # PostgreSQL's own default


def scram_verifier(password: str) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), made here so that
    the password itself is never sent: not in the statement, not in the server's log of DDL,
    not in an error message that quotes the statement."""
    if not (password.isascii() and password.isprintable()):
        # SASLprep of ASCII is the identity; beyond it PostgreSQL and this would have to agree.
        raise RoleError("use printable ASCII for the passwords (e.g. secrets.token_hex(24))")
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


async def _ensure_role(connection: AsyncConnection, name: str, password: str) -> None:
    """Create the login role, or bring an existing one to what Konfig needs (roles are
    cluster-wide: another database's Konfig may have made it)."""
    verifier = scram_verifier(password)  # base64 and digits only: safe inside quotes
    attributes = f"LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD '{verifier}'"
    attributes = attributes.replace(":", "\\:")  # text() would take ":salt…" for a parameter
    try:
        async with connection.begin_nested():
            await connection.execute(text(f'CREATE ROLE "{name}" {attributes}'))
    except DBAPIError as exc:  # duplicate_object, or unique_violation when two raced
        if getattr(exc.orig, "sqlstate", None) not in ("42710", "23505"):
            raise
    await connection.execute(text(f'ALTER ROLE "{name}" {attributes}'))


async def create_roles(admin_url: str, roles: Roles, tables: list[str]) -> None:
    """Make (or update) the owner and the app role on the database of ``admin_url``, which must
    connect as a superuser or a role with CREATEROLE that may grant on the database.

    The owner gets the schema and the tables already there (``tables``, when an earlier
    Konfig made them as another role); the app role may read and write rows of every table the
    owner makes, now and later (default privileges), and nothing else.
    """
    from konfig.db.engine import make_engine

    database = make_url(admin_url).database
    if not database or make_url(admin_url).get_backend_name() != "postgresql":
        raise RoleError("create-role needs a PostgreSQL URL that names the database")
    engine = make_engine(admin_url, poolclass=NullPool, hide_parameters=True)
    try:
        await _create_roles(engine, roles, tables, database)
    except DBAPIError as exc:  # its message without the statements
        raise RoleError(f"the database refused: {exc.orig}") from None
    finally:
        await engine.dispose()


async def _create_roles(
    engine: AsyncEngine, roles: Roles, tables: list[str], database: str
) -> None:
    async with engine.begin() as connection:
        await _ensure_role(connection, roles.owner, roles.owner_password)
        await _ensure_role(connection, roles.app, roles.app_password)
        owner, app = f'"{roles.owner}"', f'"{roles.app}"'
        quoted = database.replace('"', '""')
        for statement in (
            f'GRANT CONNECT ON DATABASE "{quoted}" TO {owner}, {app}',
            f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
            f"GRANT USAGE ON SCHEMA public TO {app}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        ):
            await connection.execute(text(statement))
        existing = await connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        for table in sorted(set(existing) & {*tables, "alembic_version"}):
            await connection.execute(text(f'ALTER TABLE "{table}" OWNER TO {owner}'))
            await connection.execute(
                text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO {app}')
            )


async def role_problems(engine: AsyncEngine, tables: list[str]) -> list[str]:
    """What makes the role ``engine`` connects as skip row-level security (nothing: [])."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.connect() as connection:
        found = (
            await connection.execute(
                text(
                    "SELECT current_user, rolsuper, rolbypassrls, ARRAY("
                    "  SELECT c.relname FROM pg_class c"
                    "  WHERE c.relnamespace = current_schema()::regnamespace"
                    "  AND c.relkind = 'r' AND c.relname = ANY(:tables)"
                    "  AND pg_has_role(current_user, c.relowner, 'MEMBER')"
                    "  ORDER BY c.relname) "
                    "FROM pg_roles WHERE rolname = current_user"
                ),
                {"tables": tables},
            )
        ).one()
    user, superuser, bypass, owned = found
    problems = []
    if superuser:
        problems.append(f"{user} is a superuser")
    if bypass:
        problems.append(f"{user} has BYPASSRLS")
    if owned:
        problems.append(f"{user} owns (or may act as the owner of) {', '.join(owned)}")
    return problems


async def check_role(engine: AsyncEngine, tables: list[str], *, production: bool) -> None:
    """Refuse to serve in production as a role row-level security does not hold; warn in
    development."""
    try:
        problems = await role_problems(engine, tables)
    except Exception as exc:
        from konfig.db.outage import unreachable

        kind = unreachable(exc)
        if kind is None:
            raise
        # Konfig starts without its database and answers 503 until it is back (konfig.db.outage):
        # the role goes unchecked this time rather than keeping the server down.
        log.warning("the database role was not checked: the database is unreachable (%s)", kind)
        return
    if not problems:
        return
    message = (
        f"KONFIG_DATABASE_URL connects as a role row-level security does not hold: "
        f"{'; '.join(problems)}. Serve as the app role `konfig db create-role` makes, and "
        "migrate as the owner (KONFIG_MIGRATION_DATABASE_URL); see docs/deploy.md"
    )
    if production:
        from konfig.settings import ConfigurationError

        raise ConfigurationError(message)
    log.warning("%s (allowed in development only)", message)
