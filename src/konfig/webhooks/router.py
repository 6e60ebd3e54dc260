from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.openapi import error_responses
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.state import state_of
from konfig.webhooks import service
from konfig.webhooks.schemas import (
    DeliveryQueued,
    DeliveryRead,
    DeliveryStatus,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from konfig.webhooks.targets import Policy

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=GuardedRoute)


def _context(request: Request) -> service.Context:
    state = state_of(request)
    settings = state.settings
    policy = Policy.of(settings.webhook_allow_http, settings.webhook_allowed_networks)
    return service.Context(state.write_policy.keyring, policy)


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(422),
)
async def create_webhook(
    request: Request, session: SessionDep, principal: CurrentPrincipal, payload: WebhookCreate
) -> WebhookCreated:
    """Subscribe a URL to events; the signing secret is in this answer and never shown again."""
    endpoint, secret = await service.create(
        session, principal=principal, payload=payload, context=_context(request)
    )
    return WebhookCreated(**service.render(endpoint).model_dump(), secret=secret)


@router.get("", response_model=Page[WebhookRead])
async def list_webhooks(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[WebhookRead]:
    """The tenant's webhooks, oldest first (admins)."""
    found, next_cursor = await service.list_page(
        session, principal=principal, cursor=cursor, limit=clamp(limit)
    )
    return Page[WebhookRead](items=[service.render(e) for e in found], next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=WebhookRead)
async def read_webhook(
    session: SessionDep, principal: CurrentPrincipal, webhook_id: uuid.UUID
) -> WebhookRead:
    """One webhook (admins)."""
    return service.render(await service.get(session, principal=principal, endpoint_id=webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookRead)
async def update_webhook(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    webhook_id: uuid.UUID,
    payload: WebhookUpdate,
) -> WebhookRead:
    """Change a webhook's URL, events, namespaces, description, or enable it again."""
    endpoint = await service.update(
        session,
        principal=principal,
        endpoint_id=webhook_id,
        payload=payload,
        context=_context(request),
    )
    return service.render(endpoint)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(
    session: SessionDep, principal: CurrentPrincipal, webhook_id: uuid.UUID
) -> None:
    """Delete a webhook and its delivery log."""
    await service.delete(session, principal=principal, endpoint_id=webhook_id)


@router.post("/{webhook_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    request: Request, session: SessionDep, principal: CurrentPrincipal, webhook_id: uuid.UUID
) -> SecretRotated:
    """A new signing secret, shown once; the old one also signs deliveries for 24 hours."""
    secret, expires = await service.rotate_secret(
        session, principal=principal, endpoint_id=webhook_id, context=_context(request)
    )
    return SecretRotated(secret=secret, previous_secret_expires_at=expires)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    session: SessionDep,
    principal: CurrentPrincipal,
    webhook_id: uuid.UUID,
    status: Annotated[DeliveryStatus | None, Query(description="Only these")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after")] = None,
    until: Annotated[datetime | None, Query(description="Created before")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryRead]:
    """The delivery log, newest first, every attempt of each (admins)."""
    items, next_cursor = await service.list_deliveries(
        session,
        principal=principal,
        endpoint_id=webhook_id,
        status=status,
        since=since,
        until=until,
        cursor=cursor,
        limit=clamp(limit),
    )
    return Page[DeliveryRead](items=items, next_cursor=next_cursor)


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryRead)
async def read_delivery(
    session: SessionDep, principal: CurrentPrincipal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    """One delivery and its attempts."""
    delivery = await service.get_delivery(
        session, principal=principal, endpoint_id=webhook_id, delivery_id=delivery_id
    )
    attempts = await service.attempts_of(session, delivery=delivery)
    return service.render_delivery(delivery, attempts)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryQueued,
    status_code=status.HTTP_202_ACCEPTED,
)
async def redeliver(
    session: SessionDep, principal: CurrentPrincipal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryQueued:
    """Send a delivery again now, with the same webhook-id."""
    delivery = await service.redeliver(
        session, principal=principal, endpoint_id=webhook_id, delivery_id=delivery_id
    )
    return DeliveryQueued(id=delivery.id, message_id=service.message_id(delivery), status="pending")


@router.post(
    "/{webhook_id}/test", response_model=DeliveryQueued, status_code=status.HTTP_202_ACCEPTED
)
async def test_webhook(
    session: SessionDep, principal: CurrentPrincipal, webhook_id: uuid.UUID
) -> DeliveryQueued:
    """Send a webhook.test event to this webhook."""
    delivery = await service.ping(session, principal=principal, endpoint_id=webhook_id)
    return DeliveryQueued(id=delivery.id, message_id=service.message_id(delivery), status="pending")
