"""feature flag evaluation counts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00

Flags themselves are config entries (value type ``flag``): no table. Their evaluation counts,
gathered in memory and written once a minute, go to ``flag_evaluations``, tenant-owned like
every other table: row-level security on PostgreSQL (the policy of 0006), exact text
comparison on MariaDB (the database default since 0007).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import konfig.db.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POLICY = (
    "tenant_id = ANY ((SELECT string_to_array(nullif(current_setting('konfig.tenant_id', true), "
    "''), ','))::uuid[]) OR (SELECT coalesce(current_setting('konfig.across_tenants', true), '') "
    "<> '')"
)


def upgrade() -> None:
    op.create_table(
        "flag_evaluations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("flag", sa.String(length=255), nullable=False),
        sa.Column("variant", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("hour", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_flag_evaluations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_evaluations")),
    )
    with op.batch_alter_table("flag_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flag_evaluations_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_flag_evaluations_tenant_id_namespace_flag",
            ["tenant_id", "namespace", "flag"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE flag_evaluations ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE flag_evaluations FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON flag_evaluations USING ({_POLICY}) "
            f"WITH CHECK ({_POLICY})"
        )


def downgrade() -> None:
    with op.batch_alter_table("flag_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_flag_evaluations_tenant_id_namespace_flag")
        batch_op.drop_index(batch_op.f("ix_flag_evaluations_tenant_id"))
    op.drop_table("flag_evaluations")
