"""Protection policies, change requests and their conversation (every row tenant-owned)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, TimestampMixin, utcnow


class ProtectionPolicy(IdMixin, TimestampMixin, Base):
    """Namespaces matching ``namespaces`` change only through approved change requests."""

    __tablename__ = "protection_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    # A pattern in the language of grants and token scopes (``*/production``).
    namespaces: Mapped[str] = mapped_column(String(255))
    approvals_required: Mapped[int] = mapped_column(default=1)
    # [{"role": "admin"}, {"group": "sre"}]; empty: whoever may edit the namespace.
    approvers: Mapped[list[Any]] = mapped_column(Json, default=list)
    allow_self_approval: Mapped[bool] = mapped_column(default=False)
    enforcement: Mapped[str] = mapped_column(String(8), default="hard")  # hard | soft
    created_by: Mapped[str] = mapped_column(String(80), default="")


class ChangeRequest(IdMixin, TimestampMixin, Base):
    """A proposed change to one namespace: a draft its author adds to, then a request that is
    reviewed and merged as one revision (or rejected)."""

    __tablename__ = "change_requests"
    __table_args__ = (
        Index("ix_change_requests_tenant_id_status", "tenant_id", "status"),
        Index("ix_change_requests_namespace_id_author", "namespace_id", "author"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("namespaces.id", ondelete="CASCADE")
    )
    author: Mapped[str] = mapped_column(String(80))  # an actor: user:<id> or token:<id>
    status: Mapped[str] = mapped_column(String(16), default="draft")
    title: Mapped[str] = mapped_column(String(500), default="")
    # The namespace's revision when the request was last added to.
    base_revision: Mapped[int] = mapped_column(default=0)
    # Per key: {"key", "action": "set"|"delete", "base_version" (None: the key was absent),
    # and for "set" the new entry: "value" (ciphertext, base64), "value_type",
    # "validation_schema", "description", "is_secret"}.
    changes: Mapped[list[Any]] = mapped_column(Json, default=list)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    merged_at: Mapped[datetime | None] = mapped_column(default=None)
    merged_by: Mapped[str | None] = mapped_column(String(80), default=None)
    merged_revision: Mapped[int | None] = mapped_column(default=None)


class ChangeRequestEvent(IdMixin, Base):
    """One step of a request's conversation: submitted, a comment, an approval, a rejection,
    the merge."""

    __tablename__ = "change_request_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    change_request_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("change_requests.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))  # submit | comment | approve | reject | merge
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
