from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, utcnow


class AuditEvent(IdMixin, Base):
    """Who did what to which target, when, from where; never a secret value or a token."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_id_created_at", "tenant_id", "created_at"),)

    # Null only for events with no tenant yet, such as a failed login for an unknown email.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(300), default="")
    namespace: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    summary: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    request_id: Mapped[str] = mapped_column(String(128), default="")
    client: Mapped[str] = mapped_column(String(64), default="")
