"""usage analytics: clients, traffic, key reads

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:30:00

What the read path records in memory (konfig.analytics) is written here every
KONFIG_ANALYTICS_FLUSH_SECONDS: ``analytics_clients`` (one row per instance and namespace: the
state it holds, when it was last seen), ``analytics_traffic`` (answers per namespace, caller
and minute, rolled up into hours and days) and ``analytics_key_reads`` (when a resolved read
last delivered each key). Tenant-owned like every other table: row-level security on
PostgreSQL (the policy of 0006), deleted with their tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import konfig.db.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POLICY = (
    "tenant_id = ANY ((SELECT string_to_array(nullif(current_setting('konfig.tenant_id', true), "
    "''), ','))::uuid[]) OR (SELECT coalesce(current_setting('konfig.across_tenants', true), '') "
    "<> '')"
)
TABLES = ("analytics_clients", "analytics_traffic", "analytics_key_reads")


def _tenant(table: str) -> list[Any]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    when = konfig.db.base.UTCDateTime(timezone=True)
    op.create_table(
        "analytics_clients",
        *_tenant("analytics_clients"),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("sdk", sa.String(length=100), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", when, nullable=False),
        sa.Column("last_pushed_at", when, nullable=True),
        sa.UniqueConstraint(
            "tenant_id",
            "namespace",
            "actor",
            "instance",
            "address",
            name="uq_analytics_clients_tenant_id_namespace_actor_instance_address",
        ),
    )
    op.create_table(
        "analytics_traffic",
        *_tenant("analytics_traffic"),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("start", when, nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.Column("not_modified", sa.BigInteger(), nullable=False),
        sa.Column("pushes", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "analytics_key_reads",
        *_tenant("analytics_key_reads"),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("last_read_at", when, nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "namespace", "key", name="uq_analytics_key_reads_tenant_id_namespace_key"
        ),
    )
    for table in TABLES:
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"], unique=False)
    op.create_index(
        "ix_analytics_traffic_tenant_id_namespace_start",
        "analytics_traffic",
        ["tenant_id", "namespace", "start"],
        unique=False,
    )
    op.create_index(
        "ix_analytics_traffic_span_start", "analytics_traffic", ["span", "start"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} USING ({_POLICY}) "
                f"WITH CHECK ({_POLICY})"
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
