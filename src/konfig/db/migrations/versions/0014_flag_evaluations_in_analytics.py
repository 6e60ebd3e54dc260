"""flag evaluation counts join the usage analytics

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:00:00

OFREP's evaluation counts are part of the usage record (konfig.analytics): written in its flush
as minute rows of ``analytics_flag_evaluations``, rolled up into hours and days like
``analytics_traffic`` and forgotten after KONFIG_ANALYTICS_RETENTION_DAYS. The hourly rows of
``flag_evaluations`` (0008) are carried over as hour rows, and that table is dropped.
Tenant-owned like every other table: row-level security on PostgreSQL (the policy of 0006).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import konfig.db.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POLICY = (
    "tenant_id = ANY ((SELECT string_to_array(nullif(current_setting('konfig.tenant_id', true), "
    "''), ','))::uuid[]) OR (SELECT coalesce(current_setting('konfig.across_tenants', true), '') "
    "<> '')"
)
_NEW = "analytics_flag_evaluations"
_OLD = "flag_evaluations"


def _isolate(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({_POLICY}) WITH CHECK ({_POLICY})"
        )


def _columns(table: str, when: str, *extra: sa.Column[int]) -> list[Any]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("flag", sa.String(length=255), nullable=False),
        sa.Column("variant", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column(when, konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        *extra,
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    op.create_table(_NEW, *_columns(_NEW, "start", sa.Column("span", sa.Integer(), nullable=False)))
    op.create_index(f"ix_{_NEW}_tenant_id", _NEW, ["tenant_id"], unique=False)
    op.create_index(
        f"ix_{_NEW}_tenant_id_namespace_flag_start",
        _NEW,
        ["tenant_id", "namespace", "flag", "start"],
        unique=False,
    )
    op.create_index(f"ix_{_NEW}_span_start", _NEW, ["span", "start"], unique=False)
    _isolate(_NEW)
    # Across tenants: migrations run with konfig.across_tenants set (env.py).
    op.execute(
        "INSERT INTO analytics_flag_evaluations "
        "(id, tenant_id, namespace, flag, variant, actor, start, span, count) "
        "SELECT id, tenant_id, namespace, flag, variant, actor, hour, 3600, count "
        "FROM flag_evaluations"
    )
    op.drop_table(_OLD)  # its indexes with it (MariaDB refuses to drop the foreign key's alone)


def downgrade() -> None:
    op.create_table(_OLD, *_columns(_OLD, "hour"))
    with op.batch_alter_table(_OLD, schema=None) as batch_op:
        batch_op.create_index("ix_flag_evaluations_tenant_id", ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_flag_evaluations_tenant_id_namespace_flag",
            ["tenant_id", "namespace", "flag"],
            unique=False,
        )
    _isolate(_OLD)
    # Every span's rows, each at its start (readers floor to the hour and sum).
    op.execute(
        "INSERT INTO flag_evaluations (id, tenant_id, namespace, flag, variant, actor, hour, count) "
        "SELECT id, tenant_id, namespace, flag, variant, actor, start, count "
        "FROM analytics_flag_evaluations"
    )
    op.drop_table(_NEW)
