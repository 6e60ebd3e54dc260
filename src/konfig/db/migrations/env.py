"""Alembic environment: runs on the connection Konfig hands it (see konfig.db.migrate).

Applying migrations needs no models, so this script imports no feature when Konfig runs it.
Only a developer's ``alembic revision --autogenerate`` compares the database with the models:
that entry point alone takes the metadata from ``konfig.models``, where the app is assembled.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from konfig.settings import get_settings

config = context.config


def _run(connection: Connection, target_metadata: MetaData | None = None) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Row-level security is forced on the owner too (migration 0006): a migration that
            # reads or rewrites tenants' rows must see every tenant's, for this transaction only.
            connection.exec_driver_sql(
                "SELECT set_config('konfig.across_tenants', 'migrations', true)"
            )
        context.run_migrations()


async def _run_standalone() -> None:
    from sqlalchemy.pool import NullPool

    from konfig.db.engine import make_engine
    from konfig.models import metadata  # autogenerate compares the database with every model

    engine = make_engine(get_settings().resolved_database_url, poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run, metadata)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `konfig db upgrade`")

connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic` (e.g. `alembic revision --autogenerate`) with KONFIG_DATABASE_URL
    asyncio.run(_run_standalone())
