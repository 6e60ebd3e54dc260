"""Analytics as written: the clients (one row per instance and namespace), traffic per
namespace, token and time bucket, flag evaluations per flag, variant, token and time bucket,
and when a resolved read last delivered each key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin


class ClientInstance(IdMixin, Base):
    """An instance (``X-Konfig-Instance``; without one, the caller's address) reading
    ``namespace`` with ``actor``'s credentials, the state it was last sent or confirmed, and
    when. Replicas write it with an upsert: one row per instance and namespace."""

    __tablename__ = "analytics_clients"
    __table_args__ = (UniqueConstraint("tenant_id", "namespace", "actor", "instance", "address"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(80))
    instance: Mapped[str] = mapped_column(String(200))  # "" when the client sent none
    address: Mapped[str] = mapped_column(String(64))  # "" when the client named its instance
    sdk: Mapped[str] = mapped_column(String(100))
    revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(64))  # the resolved config's ETag (unquoted)
    last_seen_at: Mapped[datetime] = mapped_column()
    last_pushed_at: Mapped[datetime | None] = mapped_column(default=None)


class Traffic(IdMixin, Base):
    """Answers to ``actor`` for ``namespace`` in the ``span`` seconds from ``start`` (60, 3600
    or 86400: minutes roll up into hours, hours into days). Replicas add rows; readers sum."""

    __tablename__ = "analytics_traffic"
    __table_args__ = (
        Index("ix_analytics_traffic_tenant_id_namespace_start", "tenant_id", "namespace", "start"),
        Index("ix_analytics_traffic_span_start", "span", "start"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(80))
    start: Mapped[datetime] = mapped_column()
    span: Mapped[int] = mapped_column(Integer)
    reads: Mapped[int] = mapped_column(BigInteger)
    not_modified: Mapped[int] = mapped_column(BigInteger)
    pushes: Mapped[int] = mapped_column(BigInteger)


class KeyRead(IdMixin, Base):
    """The last time a resolved read delivered ``key`` of ``namespace`` (the namespace that
    defines it: a read of ``payments/production`` delivers the keys it inherits too)."""

    __tablename__ = "analytics_key_reads"
    __table_args__ = (UniqueConstraint("tenant_id", "namespace", "key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    last_read_at: Mapped[datetime] = mapped_column()


class FlagEvaluation(IdMixin, Base):
    """How many times ``flag`` of ``namespace`` answered ``variant`` over OFREP to ``actor`` in
    the ``span`` seconds from ``start`` (60, 3600 or 86400: rolled up like the traffic).
    Replicas add rows; readers sum."""

    __tablename__ = "analytics_flag_evaluations"
    __table_args__ = (
        Index(
            "ix_analytics_flag_evaluations_tenant_id_namespace_flag_start",
            "tenant_id",
            "namespace",
            "flag",
            "start",
        ),
        Index("ix_analytics_flag_evaluations_span_start", "span", "start"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    namespace: Mapped[str] = mapped_column(String(255))
    flag: Mapped[str] = mapped_column(String(255))
    variant: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(80))
    start: Mapped[datetime] = mapped_column()
    span: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(BigInteger)
