"""Service accounts and the API tokens that act for them (or for a user)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, TimestampMixin, utcnow


class ServiceAccount(IdMixin, TimestampMixin, Base):
    """A machine identity (``billing-worker``) that owns API tokens."""

    __tablename__ = "service_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    created_by: Mapped[str] = mapped_column(String(80), default="")


class ApiToken(IdMixin, Base):
    """An API token; only the SHA-256 of its secret is kept. Revoked tokens stay listed."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("(service_account_id IS NULL) <> (user_id IS NULL)", name="one_owner"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    service_account_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True, default=None
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    # [{"namespaces": "payments/*", "permissions": ["read"]}, ...]
    scopes: Mapped[list[Any]] = mapped_column(Json, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80), default="")
