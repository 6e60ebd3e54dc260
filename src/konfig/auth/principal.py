"""Who is calling: a user (JWT access token) or an API token (``kfg_…``)."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.db.session import across_tenants
from konfig.errors import Forbidden
from konfig.tokens.scopes import Permission, Scope
from konfig.users import grants as access
from konfig.users.grants import Grant
from konfig.users.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "token"]
    id: uuid.UUID
    tenant_id: uuid.UUID
    # The tenant role (``konfig.users.grants.tenant_role``); a token's ceiling for tokens.
    role: Role
    is_superuser: bool = False
    session_id: uuid.UUID | None = None
    email: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # Token principals only: what the token may touch. Their ``role`` is a ceiling (viewer, or
    # editor when a scope grants write), never admin, so admin-only endpoints refuse tokens.
    scopes: tuple[Scope, ...] = ()
    # A user's grants; for a user's token, its user's (a token never does more than its user);
    # None for a service account's token, which its scopes alone bound.
    grants: tuple[Grant, ...] | None = None

    @property
    def actor(self) -> str:
        """How history and audit name this principal (never a secret)."""
        return f"{self.kind}:{self.id}"

    def require(self, role: Role) -> None:
        """Refuse with 403 unless the principal holds ``role`` or above (superusers always may)."""
        if self.is_superuser or self.role.at_least(role):
            return
        if self.kind == "token":
            raise Forbidden(
                f"API tokens cannot do this: it needs a user with the {role.value} role"
            )
        raise Forbidden(f"this needs the {role.value} role or above; you are {self.role.value}")

    def require_user(self) -> None:
        """Refuse with 403 when an API token calls an endpoint meant for people."""
        if self.kind != "user":
            raise Forbidden("API tokens cannot do this: it needs a user login")

    def role_on(self, namespace: str) -> Role | None:
        """The role this person holds on the namespace named so (None: no access at all)."""
        if self.is_superuser:
            return Role.owner
        return access.role_on(self.grants or (), namespace)

    def require_on(self, namespace: str, role: Role) -> None:
        """403 unless the principal holds ``role`` or above on the namespace named so."""
        if self.kind == "token":
            self.require(role)  # a token's ceiling; its scopes are checked where it reads
            return
        held = self.role_on(namespace)
        if held is None or not held.at_least(role):
            raise Forbidden(
                f"this needs the {role.value} role on {namespace}; you are "
                f"{held.value if held else 'not granted any role'} there",
                {"namespace": namespace, "needed": role.value},
            )

    def require_somewhere(self, role: Role) -> None:
        """403 unless some grant (or a token's ceiling) gives ``role`` or above on some
        namespace: the early refusal of a write before its namespace is known."""
        if self.kind == "token" or self.is_superuser:
            self.require(role)
            return
        held = access.highest(self.grants or ())
        if held is None or not held.at_least(role):
            raise Forbidden(f"this needs the {role.value} role on some namespace; you have none")

    def allows(self, namespace: str, permission: Permission) -> bool:
        """May this principal ``read`` or ``write`` the entries of the namespace named so, or
        see its ``secrets`` decrypted?

        The one namespace permission check: users by their grants (viewers read, editors write
        and see secrets: ``konfig.users.grants.allowed``), tokens by their scopes within their
        role ceiling and, for a user's token, within its user's grants too. Tenant isolation is
        the caller's business.
        """
        if self.kind == "user":
            return self.is_superuser or access.allowed(self.grants or (), namespace, permission)
        if permission == "write" and not self.role.at_least(Role.editor):
            return False
        if self.grants is not None and not access.allowed(self.grants, namespace, permission):
            return False
        return any(scope.allows(namespace, permission) for scope in self.scopes)

    def may_see_secrets(self) -> bool:
        """Whether secrets may be decrypted for this principal anywhere (a token: in some
        namespace of its scopes)."""
        if self.kind == "user":
            held = access.highest(self.grants or ())
            return self.is_superuser or (held is not None and held.at_least(Role.editor))
        return any("secrets" in scope.permissions for scope in self.scopes)


def superuser_scope(
    session: AsyncSession, principal: Principal, reason: str
) -> AbstractAsyncContextManager[None]:
    """A superuser's administration spans every tenant, so row-level security lets it
    (``across_tenants``); anyone else's stays within the tenant their transaction is bound to."""
    if principal.is_superuser:
        return across_tenants(session, f"superuser: {reason}")
    return nullcontext()
