from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, Blob, IdMixin, Json, TimestampMixin


class ConfigEntry(IdMixin, TimestampMixin, Base):
    """The current state of one key; its value is always stored encrypted."""

    __tablename__ = "config_entries"
    __table_args__ = (UniqueConstraint("namespace_id", "key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("namespaces.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(255))
    value_ciphertext: Mapped[bytes] = mapped_column(Blob)
    value_type: Mapped[str] = mapped_column(String(16))
    validation_schema: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    description: Mapped[str] = mapped_column(String(1000), default="")
    is_secret: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    revision: Mapped[int] = mapped_column(default=1)  # the namespace revision that wrote it
    updated_by: Mapped[str] = mapped_column(String(80), default="")
    # The namespaces its value's references name (``${ref:ns:key}``); None for a plain value.
    refs: Mapped[list[str] | None] = mapped_column(Json, default=None)
