"""token secrets permission: tokens that read today keep reading secrets

Secret values on the read path now need the ``secrets`` permission beside ``read``. So that
existing tokens keep working as they did, every scope that grants ``read`` is granted
``secrets`` too (a data migration over the JSON scopes; no schema change).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:40:00.000000
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tokens = sa.table(
    "api_tokens",
    sa.column("id", sa.Uuid()),
    sa.column(
        "scopes",
        sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql"),
    ),
)


def _granted(scopes: Any) -> Any:
    if not isinstance(scopes, list):
        return scopes
    changed = []
    for scope in scopes:
        permissions = scope.get("permissions") if isinstance(scope, dict) else None
        if isinstance(permissions, list) and "read" in permissions and "secrets" not in permissions:
            scope = {**scope, "permissions": [*permissions, "secrets"]}
        changed.append(scope)
    return changed


def _revoked(scopes: Any) -> Any:
    if not isinstance(scopes, list):
        return scopes
    return [
        {**s, "permissions": [p for p in s["permissions"] if p != "secrets"]}
        if isinstance(s, dict) and isinstance(s.get("permissions"), list)
        else s
        for s in scopes
    ]


def _rewrite(change: Callable[[Any], Any]) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(_tokens.c.id, _tokens.c.scopes)).all()
    for token_id, scopes in rows:
        new = change(scopes)
        if new != scopes:
            connection.execute(
                sa.update(_tokens).where(_tokens.c.id == token_id).values(scopes=new)
            )


def upgrade() -> None:
    _rewrite(_granted)


def downgrade() -> None:
    _rewrite(_revoked)
