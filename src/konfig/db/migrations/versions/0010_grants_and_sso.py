"""grants per namespace pattern, groups, and single sign-on per tenant

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:30:00

Each user's tenant-wide role becomes a grant on ``**`` in the new ``users.grants`` list (the
``role`` column stays: the tenant role the grants make, on which owners are counted). Groups
carry grants too (``groups``; a user's ``groups`` and what they grant, ``group_grants``). Two
tenant-owned tables for OpenID Connect: ``sso_configs`` (one provider per tenant, its client
secret encrypted) and ``sso_flows`` (sign-ins sent to the provider, spent by their callback),
each with row-level security on PostgreSQL as migration 0006 gives the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import konfig.db.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql")
TABLES = ("groups", "sso_configs", "sso_flows")
BOUND = (
    "(SELECT string_to_array(nullif(current_setting('konfig.tenant_id', true), ''), ','))::uuid[]"
)
ACROSS = "(SELECT coalesce(current_setting('konfig.across_tenants', true), '') <> '')"
POLICY = f"tenant_id = ANY ({BOUND}) OR {ACROSS}"

_users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("role"),
    sa.column("grants", JSON),
    sa.column("groups", JSON),
    sa.column("group_grants", JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        for column in ("grants", "groups", "group_grants"):
            batch_op.add_column(sa.Column(column, JSON, nullable=True))
    connection = op.get_bind()
    for user_id, role in connection.execute(sa.select(_users.c.id, _users.c.role)).all():
        connection.execute(
            sa.update(_users)
            .where(_users.c.id == user_id)
            .values(grants=[{"role": role, "namespaces": "**"}], groups=[], group_grants=[])
        )
    with op.batch_alter_table("users") as batch_op:
        for column in ("grants", "groups", "group_grants"):
            batch_op.alter_column(column, existing_type=JSON, nullable=False)

    op.create_table(
        "groups",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("grants", JSON, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_groups_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_groups_tenant_id_name")),
    )
    with op.batch_alter_table("groups") as batch_op:
        batch_op.create_index(batch_op.f("ix_groups_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "sso_configs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("client_secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("allowed_domains", JSON, nullable=False),
        sa.Column("role_mapping", JSON, nullable=False),
        sa.Column("default_grants", JSON, nullable=False),
        sa.Column("group_claim", sa.String(length=100), nullable=True),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("password_login", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sso_configs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_configs")),
    )
    with op.batch_alter_table("sso_configs") as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_configs_tenant_id"), ["tenant_id"], unique=True)

    op.create_table(
        "sso_flows",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_page", sa.String(length=500), nullable=False),
        sa.Column("created_at", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", konfig.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("spent_at", konfig.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sso_flows_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_flows")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_flows_state_hash")),
    )
    with op.batch_alter_table("sso_flows") as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_flows_tenant_id"), ["tenant_id"], unique=False)

    if connection.dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
            )


def downgrade() -> None:
    op.drop_table("sso_flows")
    op.drop_table("sso_configs")
    op.drop_table("groups")
    with op.batch_alter_table("users") as batch_op:
        for column in ("group_grants", "groups", "grants"):
            batch_op.drop_column(column)
