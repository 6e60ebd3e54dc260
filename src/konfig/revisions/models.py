from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, Blob, IdMixin, Json, utcnow


class Revision(IdMixin, Base):
    """One committed change to a namespace (one key or an atomic batch)."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("namespace_id", "revision"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("namespaces.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int]
    actor: Mapped[str] = mapped_column(String(80))
    message: Mapped[str | None] = mapped_column(String(1000), default=None)
    keys: Mapped[list[Any]] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntryVersion(IdMixin, Base):
    """One version of one key, valid from ``revision`` until ``superseded_at`` (exclusive).

    The namespace as it was at revision R is every version with ``revision <= R`` and
    (``superseded_at`` null or ``> R``) that is not a deletion: one indexed query, no replay,
    and a write touches only the version it supersedes.
    """

    __tablename__ = "entry_versions"
    __table_args__ = (
        UniqueConstraint("namespace_id", "key", "version"),
        Index("ix_entry_versions_namespace_id_revision", "namespace_id", "revision"),
        Index("ix_entry_versions_namespace_id_superseded_at", "namespace_id", "superseded_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("namespaces.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    revision: Mapped[int]
    superseded_at: Mapped[int | None] = mapped_column(default=None)
    action: Mapped[str] = mapped_column(String(8))  # create | update | delete
    value_ciphertext: Mapped[bytes | None] = mapped_column(Blob, default=None)
    value_type: Mapped[str] = mapped_column(String(16))
    validation_schema: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    description: Mapped[str] = mapped_column(String(1000), default="")
    is_secret: Mapped[bool] = mapped_column(default=False)
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
