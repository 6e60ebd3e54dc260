"""Webhook endpoints, the deliveries owed to them, and every attempt to send one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, Blob, IdMixin, Json, TimestampMixin, utcnow


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    """A URL subscribed to event types in the namespaces a pattern matches."""

    __tablename__ = "webhook_endpoints"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(1000), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    events: Mapped[list[Any]] = mapped_column(Json, default=list)  # event types
    namespaces: Mapped[str] = mapped_column(String(255), default="**")  # a pattern
    # The signing secret, encrypted with the keyring; the one it replaced, valid until then.
    secret_ciphertext: Mapped[bytes] = mapped_column(Blob)
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(Blob, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Since when every attempt has failed (None: the last one succeeded, or none was made).
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(300), default=None)
    created_by: Mapped[str] = mapped_column(String(80), default="")


class WebhookDelivery(IdMixin, Base):
    """One event owed to one endpoint; its id is the ``webhook-id`` of every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_pending", "status", "created_at", "sequence"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "order_key", "created_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(64))
    # Deliveries to one endpoint with the same order key go out in order, one at a time.
    order_key: Mapped[str] = mapped_column(String(255), default="")
    sequence: Mapped[int] = mapped_column(default=0)
    payload: Mapped[bytes] = mapped_column(Blob)  # the body, exactly as sent and signed
    status: Mapped[str] = mapped_column(String(16), default="pending")  # succeeded | failed
    attempts: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)  # the place in the retry schedule
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(IdMixin, Base):
    """One try at sending a delivery: what came back, or what went wrong."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(default=None)
    duration_ms: Mapped[int] = mapped_column(default=0)
    response: Mapped[str] = mapped_column(String(1024), default="")  # the first 1 KB
    error: Mapped[str | None] = mapped_column(String(300), default=None)
    outcome: Mapped[str] = mapped_column(String(16))  # succeeded | failed
