from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, TimestampMixin


class Role(enum.StrEnum):
    owner = "owner"
    admin = "admin"
    editor = "editor"
    viewer = "viewer"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {Role.viewer: 0, Role.editor: 1, Role.admin: 2, Role.owner: 3}


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    # The tenant role, kept equal to ``konfig.users.grants.tenant_role(grants)`` by the one
    # function that sets grants (``konfig.users.service.set_grants``): owners are counted on it.
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", native_enum=False, length=16, validate_strings=True)
    )
    # [{"role": "editor", "namespaces": "payments/**"}, ...]: see konfig.users.grants
    grants: Mapped[list[Any]] = mapped_column(Json, default=list)
    # The names of the groups they belong to (konfig.groups), and what those grant, kept
    # together by konfig.groups.service: a person holds their own grants and these.
    groups: Mapped[list[Any]] = mapped_column(Json, default=list)
    group_grants: Mapped[list[Any]] = mapped_column(Json, default=list)

    def all_grants(self) -> list[Any]:
        """Their own grants and their groups', as stored."""
        return [*self.grants, *self.group_grants]

    is_active: Mapped[bool] = mapped_column(default=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
