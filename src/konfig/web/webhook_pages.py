"""Webhooks (admins): list, create (the signing secret shown once, on the answer to the form,
never stored in the browser), a webhook's deliveries with every attempt, redeliver, test,
enable or disable, delete. Endpoints Konfig disabled (410 Gone, failing for days) are named at
the top of the list, as failed backups are on the backups page."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.errors import ValidationFailed
from konfig.state import state_of
from konfig.users.models import Role
from konfig.web.forms import text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor
from konfig.webhooks import service
from konfig.webhooks.schemas import EVENT_TYPES, WebhookCreate, WebhookUpdate
from konfig.webhooks.targets import Policy

router = APIRouter(prefix="/admin", route_class=UIRoute)
LIST_PATH = "/ui/admin/webhooks"


def _context(visitor: Visitor) -> service.Context:
    state = state_of(visitor.request)
    settings = state.settings
    policy = Policy.of(settings.webhook_allow_http, settings.webhook_allowed_networks)
    return service.Context(state.write_policy.keyring, policy)


async def _list_page(
    visitor: Visitor,
    *,
    status_code: int = 200,
    create: dict[str, object] | None = None,
    errors: dict[str, str] | None = None,
    secret: str | None = None,
) -> Response:
    found, _ = await service.list_page(
        visitor.session, principal=visitor.principal, cursor=None, limit=200
    )
    response = page(
        visitor.request,
        "webhooks.html",
        visitor,
        status_code=status_code,
        webhooks=[service.render(w) for w in found],
        event_types=EVENT_TYPES,
        create=create or {"events": ["config.changed"], "namespaces": "**"},
        errors=errors or {},
        secret=secret,
    )
    if secret is not None:  # the secret, this once: never cached, never in a referrer
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/webhooks")
async def webhook_list(visitor: SignedIn) -> Response:
    """The organisation's webhooks (admins)."""
    visitor.principal.require(Role.admin)
    return await _list_page(visitor)


@router.post("/webhooks")
async def create_webhook(visitor: SignedIn) -> Response:
    """Create a webhook and show its signing secret, this once."""
    visitor.principal.require(Role.admin)
    form = await visitor.request.form()
    fields: dict[str, object] = {
        "url": text(form, "url").strip(),
        "namespaces": text(form, "namespaces").strip() or "**",
        "description": text(form, "description").strip(),
        "events": [e for e in form.getlist("events") if isinstance(e, str)],
    }
    errors: dict[str, str] = {}
    try:
        payload = WebhookCreate.model_validate(fields)
        endpoint, secret = await service.create(
            visitor.session, principal=visitor.principal, payload=payload, context=_context(visitor)
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "url"
            errors.setdefault(where, str(error["msg"]).removeprefix("Value error, "))
    except ValidationFailed as exc:
        errors["url"] = exc.message.removeprefix("url: ")
    if errors:
        await visitor.restart()
        return await _list_page(visitor, status_code=422, create=fields, errors=errors)
    return await _list_page(visitor, secret=secret, create={"created": str(endpoint.id)})


@router.get("/webhooks/{webhook_id}")
async def webhook_detail(visitor: SignedIn, webhook_id: uuid.UUID, status: str = "") -> Response:
    """One webhook and its deliveries, newest first, with every attempt."""
    endpoint = await service.get(
        visitor.session, principal=visitor.principal, endpoint_id=webhook_id
    )
    deliveries, _ = await service.list_deliveries(
        visitor.session,
        principal=visitor.principal,
        endpoint_id=webhook_id,
        status=status if status in ("pending", "succeeded", "failed") else None,
        since=None,
        until=None,
        cursor=None,
        limit=100,
    )
    return page(
        visitor.request,
        "webhook.html",
        visitor,
        webhook=service.render(endpoint),
        deliveries=deliveries,
        status=status,
    )


@router.post("/webhooks/{webhook_id}/test")
async def test_webhook(visitor: SignedIn, webhook_id: uuid.UUID) -> Response:
    """Send a webhook.test event."""
    await service.ping(visitor.session, principal=visitor.principal, endpoint_id=webhook_id)
    return redirect(
        visitor.request, f"{LIST_PATH}/{webhook_id}", flash="Test event queued: see it below."
    )


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(visitor: SignedIn, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
    """Send a delivery again, with the same webhook-id."""
    await service.redeliver(
        visitor.session,
        principal=visitor.principal,
        endpoint_id=webhook_id,
        delivery_id=delivery_id,
    )
    return redirect(
        visitor.request, f"{LIST_PATH}/{webhook_id}", flash="Delivery queued to be sent again."
    )


@router.post("/webhooks/{webhook_id}/enabled")
async def set_enabled(visitor: SignedIn, webhook_id: uuid.UUID) -> Response:
    """Enable (clearing why it was disabled) or disable a webhook."""
    form = await visitor.request.form()
    enabled = text(form, "enabled") == "1"
    await service.update(
        visitor.session,
        principal=visitor.principal,
        endpoint_id=webhook_id,
        payload=WebhookUpdate(enabled=enabled),
        context=_context(visitor),
    )
    word = "Enabled" if enabled else "Disabled"
    return redirect(visitor.request, f"{LIST_PATH}/{webhook_id}", flash=f"{word} the webhook.")


@router.post("/webhooks/{webhook_id}/delete")
async def delete_webhook(visitor: SignedIn, webhook_id: uuid.UUID) -> Response:
    """Delete a webhook and its delivery log."""
    await service.delete(visitor.session, principal=visitor.principal, endpoint_id=webhook_id)
    return redirect(visitor.request, LIST_PATH, flash="Deleted the webhook and its deliveries.")
