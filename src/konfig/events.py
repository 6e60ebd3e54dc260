"""Changes other than entry revisions that caches on every replica must hear of.

A neutral module: the features that make these changes and the delivery layer that acts on
them both import it, so no feature imports ``konfig.delivery``. Services queue them with
``konfig.db.session.record_change``; once the transaction commits they reach
``AppState.change_hooks`` (this process) and the notifier (the other replicas). Entry writes
travel as ``konfig.revisions.writer.Committed`` through the commit hooks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NamespaceChanged:
    """A namespace's includes changed, or it was deleted: whatever inherits it re-resolves."""

    tenant_id: uuid.UUID
    namespace_id: uuid.UUID
    namespace_name: str


@dataclass(frozen=True, slots=True)
class TokenChanged:
    """A token was revoked or deleted."""

    tenant_id: uuid.UUID
    token_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class UserChanged:
    """A user was deactivated, deleted or given another role: their tokens are re-checked."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class LoginEnded:
    """A login was ended (logout, a refresh token replayed): its access tokens stop working."""

    tenant_id: uuid.UUID
    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class TenantChanged:
    """A tenant was deleted or suspended: forget everything cached for it."""

    tenant_id: uuid.UUID


Change = NamespaceChanged | TokenChanged | UserChanged | LoginEnded | TenantChanged
