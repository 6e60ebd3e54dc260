"""Who is calling: a user (JWT) today; API tokens plug in here too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from konfig.errors import Forbidden
from konfig.users.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "token"]
    id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    is_superuser: bool = False
    session_id: uuid.UUID | None = None
    email: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """How history and audit name this principal (never a secret)."""
        return f"{self.kind}:{self.id}"

    def require(self, role: Role) -> None:
        """Refuse with 403 unless the principal holds ``role`` or above (superusers always may)."""
        if self.is_superuser or self.role.at_least(role):
            return
        raise Forbidden(f"this needs the {role.value} role or above; you are {self.role.value}")

    def may_see_tenant(self, tenant_id: uuid.UUID) -> bool:
        return self.is_superuser or self.tenant_id == tenant_id
