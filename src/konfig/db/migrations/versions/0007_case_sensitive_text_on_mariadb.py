"""text compared as PostgreSQL and SQLite compare it, on MariaDB (MariaDB only)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:30:00

MariaDB compares text with the database's collation, usually a case-insensitive one
(``utf8mb4_general_ci``, ``utf8mb4_unicode_ci``): the keys ``db_host`` and ``DB_HOST`` of one
namespace collided in its unique key, and a read of ``Db_Host`` found ``db_host``. Every table
is converted to ``utf8mb4_bin`` (exact comparison, as on PostgreSQL and SQLite), and so is the
database's default, so that the tables of later migrations are made that way too. Emails are
stored lowercased and compared with ``lower()`` already: nothing changes for them. SQLite and
PostgreSQL: this migration does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXACT = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    op.execute(f"ALTER DATABASE {EXACT}")
    for table in _tables(bind):
        op.execute(f"ALTER TABLE `{table}` CONVERT TO {EXACT}")


def downgrade() -> None:
    """Nothing to undo: exact comparison is what every other backend does."""


def _tables(bind: sa.Connection) -> list[str]:
    found = bind.execute(
        sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version' "
            "ORDER BY table_name"
        )
    )
    return [str(name) for (name,) in found]
