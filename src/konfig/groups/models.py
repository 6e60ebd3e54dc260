from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, TimestampMixin


class Group(IdMixin, TimestampMixin, Base):
    """Grants its members hold beside their own (``User.groups`` names them)."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    # [{"role": "editor", "namespaces": "payments/**"}, ...]: see konfig.users.grants
    grants: Mapped[list[Any]] = mapped_column(Json, default=list)
