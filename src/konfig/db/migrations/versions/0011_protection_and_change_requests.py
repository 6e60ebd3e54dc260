"""protected namespaces: protection policies and change requests

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:20:00

``namespaces.protection`` ("hard", "soft" or null) is what the writers read under the
namespace's lock: the strictest policy matching its name. Three tenant-owned tables, each with
row-level security on PostgreSQL as migration 0006 gives the others: ``protection_policies``,
``change_requests`` (the proposed diff, its values encrypted like entries) and
``change_request_events`` (the conversation: submissions, comments, approvals, the merge).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import konfig.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql")
TABLES = ("protection_policies", "change_requests", "change_request_events")
BOUND = (
    "(SELECT string_to_array(nullif(current_setting('konfig.tenant_id', true), ''), ','))::uuid[]"
)
ACROSS = "(SELECT coalesce(current_setting('konfig.across_tenants', true), '') <> '')"
POLICY = f"tenant_id = ANY ({BOUND}) OR {ACROSS}"
DATETIME = konfig.db.base.UTCDateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("namespaces") as batch_op:
        batch_op.add_column(sa.Column("protection", sa.String(length=8), nullable=True))

    op.create_table(
        "protection_policies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("namespaces", sa.String(length=255), nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("approvers", JSON, nullable=False),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=False),
        sa.Column("enforcement", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=False),
        _tenant_fk("protection_policies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protection_policies")),
    )
    with op.batch_alter_table("protection_policies") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_protection_policies_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "change_requests",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("namespace_id", sa.Uuid(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("base_revision", sa.Integer(), nullable=False),
        sa.Column("changes", JSON, nullable=False),
        sa.Column("submitted_at", DATETIME, nullable=True),
        sa.Column("merged_at", DATETIME, nullable=True),
        sa.Column("merged_by", sa.String(length=80), nullable=True),
        sa.Column("merged_revision", sa.Integer(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_change_requests_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        _tenant_fk("change_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
    )
    with op.batch_alter_table("change_requests") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_requests_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_change_requests_tenant_id_status", ["tenant_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_change_requests_namespace_id_author", ["namespace_id", "author"], unique=False
        )

    op.create_table(
        "change_request_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("change_request_id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["change_request_id"],
            ["change_requests.id"],
            name=op.f("fk_change_request_events_change_request_id_change_requests"),
            ondelete="CASCADE",
        ),
        _tenant_fk("change_request_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_request_events")),
    )
    with op.batch_alter_table("change_request_events") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_request_events_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_change_request_events_change_request_id"),
            ["change_request_id"],
            unique=False,
        )

    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
            )


def downgrade() -> None:
    op.drop_table("change_request_events")
    op.drop_table("change_requests")
    op.drop_table("protection_policies")
    with op.batch_alter_table("namespaces") as batch_op:
        batch_op.drop_column("protection")
