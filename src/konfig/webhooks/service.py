"""Webhook rules: admins manage their tenant's endpoints; the secret is shown once; every
change is audited; targets are checked against server-side request forgery."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.db.base import utcnow
from konfig.db.outbox import EventsQueued
from konfig.db.session import record_change
from konfig.errors import NotFound, ValidationFailed
from konfig.pagination import by_time, paginate, time_of
from konfig.security.crypto import Keyring
from konfig.users.models import Role
from konfig.webhooks import fanout, repository, signing
from konfig.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from konfig.webhooks.schemas import (
    AttemptRead,
    DeliveryRead,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
)
from konfig.webhooks.secret_store import seal
from konfig.webhooks.targets import Policy, TargetRefused, resolve, shown_url

ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules need of the app: its keyring and where webhooks may go."""

    keyring: Keyring
    policy: Policy


async def _check_target(url: str, policy: Policy) -> None:
    try:
        await resolve(url, policy)
    except TargetRefused as exc:
        raise ValidationFailed(f"url: {exc}", {"field": "url", "rule": "target"}) from exc


async def create(
    session: AsyncSession, *, principal: Principal, payload: WebhookCreate, context: Context
) -> tuple[WebhookEndpoint, str]:
    principal.require(Role.admin)
    await _check_target(payload.url, context.policy)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        url=payload.url,
        description=payload.description,
        enabled=payload.enabled,
        events=list(payload.events),
        namespaces=payload.namespaces,
        created_by=principal.actor,
    )
    endpoint.secret_ciphertext = seal(context.keyring, endpoint, secret)
    await repository.add(session, endpoint)
    await _audit(session, "webhook.create", endpoint, after=_shown(endpoint))
    return endpoint, secret


def _shown(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log says of an endpoint: never its secret, nor its URL's path."""
    return {
        "url": shown_url(endpoint.url),
        "events": list(endpoint.events),
        "namespaces": endpoint.namespaces,
        "enabled": endpoint.enabled,
        "description": endpoint.description,
    }


async def _audit(
    session: AsyncSession, action: str, endpoint: WebhookEndpoint, **summary: Any
) -> None:
    await audit.record(
        session,
        action=action,
        target_type="webhook",
        target=shown_url(endpoint.url),
        summary={"id": str(endpoint.id), **summary},
    )


async def get(
    session: AsyncSession, *, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    principal.require(Role.admin)
    endpoint = await repository.get(session, tenant_id=principal.tenant_id, endpoint_id=endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook {endpoint_id}")
    return endpoint


async def list_page(
    session: AsyncSession, *, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[WebhookEndpoint], str | None]:
    principal.require(Role.admin)
    return await paginate(
        cursor,
        limit,
        read=by_time,
        fetch=lambda after, count: repository.list_endpoints(
            session, tenant_id=principal.tenant_id, after=after, limit=count
        ),
        position=time_of,
    )


async def update(
    session: AsyncSession,
    *,
    principal: Principal,
    endpoint_id: uuid.UUID,
    payload: WebhookUpdate,
    context: Context,
) -> WebhookEndpoint:
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    before = _shown(endpoint)
    if payload.url is not None:
        await _check_target(payload.url, context.policy)
        endpoint.url = payload.url
    if payload.events is not None:
        endpoint.events = list(payload.events)
    if payload.namespaces is not None:
        endpoint.namespaces = payload.namespaces
    if payload.description is not None:
        endpoint.description = payload.description
    if payload.enabled is not None:
        endpoint.enabled = payload.enabled
        if payload.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    await session.flush()
    await _audit(session, "webhook.update", endpoint, before=before, after=_shown(endpoint))
    return endpoint


async def delete(session: AsyncSession, *, principal: Principal, endpoint_id: uuid.UUID) -> None:
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    await _audit(session, "webhook.delete", endpoint, before=_shown(endpoint))
    await repository.delete_endpoint(session, endpoint=endpoint)


async def rotate_secret(
    session: AsyncSession, *, principal: Principal, endpoint_id: uuid.UUID, context: Context
) -> tuple[str, datetime]:
    """A new secret; the one it replaces keeps signing deliveries for 24 hours."""
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    secret = signing.new_secret()
    expires = utcnow() + ROTATION_OVERLAP
    endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
    endpoint.previous_secret_expires_at = expires
    endpoint.secret_ciphertext = seal(context.keyring, endpoint, secret)
    endpoint.updated_at = utcnow()
    await session.flush()
    await _audit(
        session, "webhook.rotate_secret", endpoint, previous_valid_until=expires.isoformat()
    )
    return secret, expires


# Deliveries.


def message_id(delivery: WebhookDelivery) -> str:
    return f"msg_{delivery.id.hex}"


def render_delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        webhook_id=delivery.endpoint_id,
        message_id=message_id(delivery),
        event_type=delivery.event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_attempt_at=delivery.last_attempt_at,
        created_at=delivery.created_at,
        payload=orjson.loads(delivery.payload),
        log=[
            AttemptRead(
                attempted_at=a.attempted_at,
                outcome=a.outcome,
                status_code=a.status_code,
                duration_ms=a.duration_ms,
                response=a.response,
                error=a.error,
            )
            for a in attempts
        ],
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    principal: Principal,
    endpoint_id: uuid.UUID,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[DeliveryRead], str | None]:
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    found, next_cursor = await paginate(
        cursor,
        limit,
        read=by_time,
        fetch=lambda after, count: repository.list_deliveries(
            session,
            tenant_id=endpoint.tenant_id,
            endpoint_id=endpoint.id,
            status=status,
            since=since,
            until=until,
            after=after,
            limit=count,
        ),
        position=time_of,
    )
    attempts = await repository.attempts_of(session, delivery_ids=[d.id for d in found])
    return [render_delivery(d, attempts[d.id]) for d in found], next_cursor


async def attempts_of(session: AsyncSession, *, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return (await repository.attempts_of(session, delivery_ids=[delivery.id]))[delivery.id]


async def get_delivery(
    session: AsyncSession, *, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    delivery = await repository.get_delivery(
        session, tenant_id=endpoint.tenant_id, endpoint_id=endpoint.id, delivery_id=delivery_id
    )
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id} of webhook {endpoint_id}")
    return delivery


async def redeliver(
    session: AsyncSession, *, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Send a delivery again, now, with the same ``webhook-id`` (its schedule starts over)."""
    delivery = await get_delivery(
        session, principal=principal, endpoint_id=endpoint_id, delivery_id=delivery_id
    )
    delivery.status = "pending"
    delivery.retries = 0
    delivery.next_attempt_at = utcnow()
    delivery.locked_until = None
    await session.flush()
    record_change(session, EventsQueued(delivery.tenant_id))
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    await _audit(session, "webhook.redeliver", endpoint, delivery=message_id(delivery))
    return delivery


async def ping(
    session: AsyncSession, *, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookDelivery:
    """Queue a ``webhook.test`` event to this endpoint alone (even a disabled one's address is
    checked by trying it: it is sent only once the endpoint is enabled)."""
    endpoint = await get(session, principal=principal, endpoint_id=endpoint_id)
    now = utcnow()
    data = {"webhook_id": str(endpoint.id), "actor": principal.actor}
    row = fanout.delivery_row(
        endpoint,
        event_type="webhook.test",
        order_key="",
        sequence=0,
        at=now,
        payload=fanout.body("webhook.test", now, data),
        now=now,
    )
    await repository.add_deliveries(session, [row])
    record_change(session, EventsQueued(endpoint.tenant_id))  # wakes the worker once committed
    await _audit(session, "webhook.test", endpoint)
    return await get_delivery(
        session, principal=principal, endpoint_id=endpoint.id, delivery_id=row["id"]
    )


def render(endpoint: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        enabled=endpoint.enabled,
        events=list(endpoint.events),
        namespaces=endpoint.namespaces,
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        created_by=endpoint.created_by,
    )
