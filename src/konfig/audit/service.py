"""Writing and reading audit events.

``record`` writes the event in the caller's transaction: the change and its audit row commit
together, and if the row cannot be written the change fails with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Select, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit.context import AuditContext, current
from konfig.audit.models import AuditEvent
from konfig.auth.principal import Principal, superuser_scope
from konfig.configs.schemas import MASK
from konfig.db.base import utcnow
from konfig.errors import Forbidden, ValidationFailed
from konfig.pagination import Page, by_time, paginate, time_of
from konfig.security.crypto import Keyring
from konfig.users.models import Role

_INSERT = insert(cast(Table, AuditEvent.__table__))


_REVEALED_LISTED = 100


async def record_reveal(
    session: AsyncSession, *, namespace: str, keys: Iterable[str], via: str
) -> None:
    """A ``config.reveal`` event naming the secret keys whose values a reader was shown (none:
    no event). ``via`` says where: the entry, the list, history, a snapshot, a diff, an export."""
    shown = sorted(set(keys))
    if not shown:
        return
    await record(
        session,
        action="config.reveal",
        target_type="config",
        target=", ".join(shown)[:300],
        namespace=namespace,
        summary={"keys": shown[:_REVEALED_LISTED], "total": len(shown), "via": via},
    )


def shown_value(keyring: Keyring, value: Any, *, secret: bool) -> str:
    """How the audit log shows a value: never the value itself (values are only ever stored
    encrypted), but a keyed fingerprint, so a reader sees whether it changed; secrets get the
    marker alone."""
    if secret:
        return MASK
    return "fp:" + keyring.fingerprint(orjson.dumps(value))


def event_row(
    *,
    action: str,
    target_type: str,
    target: str = "",
    namespace: str | None = None,
    summary: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | None = None,
    actor: str | None = None,
    context: AuditContext | None = None,
) -> dict[str, Any]:
    """A whole audit row; who and from where default to ``context`` (the current request's)."""
    context = context or current()
    return {
        "id": uuid.uuid4(),
        "created_at": utcnow(),
        "tenant_id": tenant_id or context.tenant_id,
        "actor": actor or context.actor,
        "action": action,
        "target_type": target_type,
        "target": target[:300],
        "namespace": namespace,
        "summary": summary or {},
        "request_id": context.request_id,
        "client": context.client,
    }


async def insert_row(session: AsyncSession, row: dict[str, Any]) -> None:
    """Write a whole audit row made by ``event_row``."""
    await session.execute(_INSERT, row)


async def record(
    session: AsyncSession,
    *,
    action: str,
    target_type: str,
    target: str = "",
    namespace: str | None = None,
    summary: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> None:
    # A Core insert, now: cheaper than the unit of work, and the row's place in the transaction
    # is where the change happened. What the caller added before (a new tenant, a user the
    # event names) goes first.
    await session.flush()
    await session.execute(
        _INSERT,
        event_row(
            action=action,
            target_type=target_type,
            target=target,
            namespace=namespace,
            summary=summary,
            tenant_id=tenant_id,
            actor=actor,
        ),
    )


async def record_failure(session: AsyncSession, exc: Exception) -> None:
    """After a refused request's rollback: keep the trace of a permission denial."""
    if isinstance(exc, Forbidden):
        await record(
            session,
            action="permission.denied",
            target_type="request",
            target=exc.details.get("target", "") if isinstance(exc.details, dict) else "",
            summary={"reason": exc.message},
        )


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise ValidationFailed(f"{name}: give a timezone, e.g. 2026-11-23T10:00:00Z")
    return parsed


async def list_page(
    session: AsyncSession,
    *,
    principal: Principal,
    actor: str | None,
    action: str | None,
    namespace: str | None,
    since: str | None,
    until: str | None,
    cursor: str | None,
    limit: int,
) -> Page[dict[str, Any]]:
    principal.require(Role.admin)
    query = _filtered(principal, actor=actor, action=action, namespace=namespace)
    if (start := _parse_time(since, "since")) is not None:
        query = query.where(AuditEvent.created_at >= start)
    if (end := _parse_time(until, "until")) is not None:
        query = query.where(AuditEvent.created_at < end)

    async def fetch(before: tuple[datetime, uuid.UUID] | None, count: int) -> list[AuditEvent]:
        page = query.limit(count)
        if before is not None:
            at, event_id = before
            page = page.where(
                (AuditEvent.created_at < at)
                | ((AuditEvent.created_at == at) & (AuditEvent.id < event_id))
            )
        async with superuser_scope(session, principal, "the audit log of every tenant"):
            return list((await session.execute(page)).scalars())

    events, next_cursor = await paginate(cursor, limit, read=by_time, fetch=fetch, position=time_of)
    return Page[dict[str, Any]](items=[_shown(e) for e in events], next_cursor=next_cursor)


def _filtered(
    principal: Principal, *, actor: str | None, action: str | None, namespace: str | None
) -> Select[AuditEvent]:
    """The events the principal may list, newest first, narrowed by the filters given."""
    query = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if not principal.is_superuser:
        query = query.where(AuditEvent.tenant_id == principal.tenant_id)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(
            AuditEvent.action.startswith(action)
            if action.endswith(".")
            else AuditEvent.action == action
        )
    if namespace:
        query = query.where(AuditEvent.namespace == namespace)
    return query


def _shown(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "created_at": event.created_at.isoformat(),
        "tenant_id": str(event.tenant_id) if event.tenant_id else None,
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target": event.target,
        "namespace": event.namespace,
        "summary": event.summary,
        "request_id": event.request_id,
        "client": event.client,
    }
