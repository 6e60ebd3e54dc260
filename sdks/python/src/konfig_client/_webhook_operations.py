"""Flows for webhooks: endpoints, their signing secrets, the delivery log, redelivery and test
pings (see ``_base`` for what a flow is)."""

from __future__ import annotations

import uuid
from typing import Any

from konfig_client._base import API, Call, Flow, paginate, quote_segment

WebhookRef = str | uuid.UUID


def _path(webhook: WebhookRef) -> str:
    return f"{API}/webhooks/{quote_segment(str(webhook))}"


def create_webhook(
    url: str,
    events: list[str],
    *,
    namespaces: str = "**",
    description: str = "",
    enabled: bool = True,
) -> Flow[dict[str, Any]]:
    body = {
        "url": url,
        "events": events,
        "namespaces": namespaces,
        "description": description,
        "enabled": enabled,
    }
    response = yield Call("POST", f"{API}/webhooks", json=body)
    return response.json()  # type: ignore[no-any-return]


def list_webhooks() -> Flow[list[dict[str, Any]]]:
    return (yield from paginate(f"{API}/webhooks", {"limit": 200}))


def get_webhook(webhook: WebhookRef) -> Flow[dict[str, Any]]:
    response = yield Call("GET", _path(webhook))
    return response.json()  # type: ignore[no-any-return]


def update_webhook(webhook: WebhookRef, changes: dict[str, Any]) -> Flow[dict[str, Any]]:
    response = yield Call("PATCH", _path(webhook), json=changes)
    return response.json()  # type: ignore[no-any-return]


def delete_webhook(webhook: WebhookRef) -> Flow[None]:
    yield Call("DELETE", _path(webhook))


def rotate_secret(webhook: WebhookRef) -> Flow[dict[str, Any]]:
    response = yield Call("POST", f"{_path(webhook)}/rotate-secret")
    return response.json()  # type: ignore[no-any-return]


def test_webhook(webhook: WebhookRef) -> Flow[dict[str, Any]]:
    response = yield Call("POST", f"{_path(webhook)}/test")
    return response.json()  # type: ignore[no-any-return]


def list_deliveries(
    webhook: WebhookRef,
    *,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> Flow[list[dict[str, Any]]]:
    params = {"status": status, "since": since, "until": until, "limit": min(limit or 200, 200)}
    return (yield from paginate(f"{_path(webhook)}/deliveries", params, max_items=limit))


def redeliver(webhook: WebhookRef, delivery: WebhookRef) -> Flow[dict[str, Any]]:
    path = f"{_path(webhook)}/deliveries/{quote_segment(str(delivery))}/redeliver"
    response = yield Call("POST", path)
    return response.json()  # type: ignore[no-any-return]
