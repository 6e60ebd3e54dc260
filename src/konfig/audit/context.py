"""What the audit log needs to know about the current request, set once per request."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from typing import NamedTuple


class AuditContext(NamedTuple):
    """Made for every request (``konfig.ops.middleware.Exchange``): a tuple, which builds in a
    fifth of the time a frozen dataclass takes."""

    actor: str = "anonymous"
    tenant_id: uuid.UUID | None = None
    request_id: str = ""
    client: str = ""
    # The request's headers as the server gave them, read only where needed (a bypass reason
    # on a write to a protected namespace, konfig.changes.proposals): kept, never scanned here.
    headers: Sequence[tuple[bytes, bytes]] = ()


audit_context: ContextVar[AuditContext | None] = ContextVar("audit_context", default=None)


def current() -> AuditContext:
    return audit_context.get() or AuditContext()


def header(name: bytes) -> bytes | None:
    """The current request's header ``name`` (lower case), the first when repeated."""
    for found, value in current().headers:
        if found == name:
            return value
    return None


def set_actor(actor: str, tenant_id: uuid.UUID | None) -> None:
    now = current()
    audit_context.set(AuditContext(actor, tenant_id, now.request_id, now.client, now.headers))
