"""The schema this build expects, known without loading Alembic.

``konfig serve`` asks whether the database is already at this build's head before it loads
Alembic to migrate (most starts have nothing to do), and ``/ready`` compares the two on every
probe. Each migration's id is its file's number (``0013_namespace_templates.py`` is
``"0013"``); ``tests/test_migrations.py`` holds Alembic's own reading to the same.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from konfig.db.engine import make_engine

VERSIONS = Path(__file__).parent / "migrations" / "versions"
_NUMBERED = re.compile(r"(\d{4})_\w+\.py")


@lru_cache
def revisions() -> tuple[str, ...]:
    """Every migration's id, oldest first."""
    found = (_NUMBERED.fullmatch(path.name) for path in VERSIONS.iterdir())
    return tuple(sorted(match[1] for match in found if match))


def head() -> str:
    """The newest migration's id: the schema this build serves."""
    return revisions()[-1]


def is_known(revision: str) -> bool:
    """Whether this build has the migration ``revision`` (a newer build's are unknown to it)."""
    return revision in revisions()


def current_revision(connection: Connection) -> str | None:
    """The database's revision as Alembic records it; None before the first migration."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


async def at_head(url: str) -> bool:
    """Whether the database at ``url`` is at this build's head (nothing to migrate)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(current_revision) == head()
    finally:
        await engine.dispose()
