"""templates and references: a namespace's contract, the namespaces an entry references

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:35:00

Two nullable JSON columns on ``namespaces`` (already tenant-owned, with its row-level-security
policy): ``template``, the contract a namespace declares for its path descendants (keys with
types, rules, descriptions, defaults, required), and ``contract``, the copy of the nearest
ancestor's template that governs a namespace, kept beside it so a write checks it in the row it
locks anyway. And ``config_entries.refs``: the namespaces an entry's value references
(``${ref:ns:key}``), so the webhooks' fan-out finds who reads a namespace through references.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql")


def upgrade() -> None:
    with op.batch_alter_table("namespaces") as batch_op:
        batch_op.add_column(sa.Column("template", JSON, nullable=True))
        batch_op.add_column(sa.Column("contract", JSON, nullable=True))
    with op.batch_alter_table("config_entries") as batch_op:
        batch_op.add_column(sa.Column("refs", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("config_entries") as batch_op:
        batch_op.drop_column("refs")
    with op.batch_alter_table("namespaces") as batch_op:
        batch_op.drop_column("contract")
        batch_op.drop_column("template")
