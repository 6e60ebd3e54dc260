from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, TimestampMixin


class Namespace(IdMixin, TimestampMixin, Base):
    """A container of entries; ``revision`` grows by one with every committed change."""

    __tablename__ = "namespaces"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(1000), default="")
    # Ordered ids of the namespaces this one includes (lowest precedence first).
    includes: Mapped[list[Any]] = mapped_column(Json, default=list)
    revision: Mapped[int] = mapped_column(default=0)
    # The contract this namespace declares for the environments under it (``templates.py``).
    template: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    # The nearest ancestor's template, copied here: what governs this namespace's writes.
    contract: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    updated_by: Mapped[str] = mapped_column(String(80), default="")
    # "hard" or "soft" when a protection policy matches its name (konfig.changes.policies keeps
    # it so): writes then open change requests instead of committing. None: unprotected.
    protection: Mapped[str | None] = mapped_column(String(8), default=None)
