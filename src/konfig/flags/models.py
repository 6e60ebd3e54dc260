"""Evaluation counts as written: per hour, tenant, namespace, flag, variant and caller."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin


class FlagEvaluation(IdMixin, Base):
    """How many times ``flag`` of ``namespace`` answered ``variant`` to ``actor`` in the hour
    starting at ``hour``. Replicas add to the hour's row (or, racing, write a second one: every
    reader sums)."""

    __tablename__ = "flag_evaluations"
    __table_args__ = (
        Index("ix_flag_evaluations_tenant_id_namespace_flag", "tenant_id", "namespace", "flag"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace: Mapped[str] = mapped_column(String(255))
    flag: Mapped[str] = mapped_column(String(255))
    variant: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(80))
    hour: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(BigInteger)
