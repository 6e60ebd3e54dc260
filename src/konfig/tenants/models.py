from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, TimestampMixin


class Tenant(IdMixin, TimestampMixin, Base):
    """An organisation; every other row belongs to exactly one."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(63), unique=True)
