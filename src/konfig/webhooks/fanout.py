"""From an outbox event to the deliveries it owes: who subscribed, and who inherits.

A change to a namespace also changes the resolved config of every namespace that inherits it
(its path descendants, and those that include it, directly or through what they include or
inherit) or whose values reference it (``${ref:ns:key}``): a ``config.changed`` event goes to
the subscribers of each of them, naming the namespace whose resolved config changed and the one
where the change was committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from konfig.db.outbox import OutboxEvent
from konfig.tokens.scopes import compile_pattern
from konfig.webhooks.models import WebhookEndpoint
from konfig.webhooks.repository import NamespaceNode

MAX_PAYLOAD_BYTES = 20_000


def wants(endpoint: WebhookEndpoint, event_type: str, namespace: str | None) -> bool:
    """Whether ``endpoint`` subscribed to this event type in this namespace (events of no
    namespace, a token or a backup, go to every subscriber of their type)."""
    if event_type not in endpoint.events:
        return False
    return namespace is None or bool(compile_pattern(endpoint.namespaces).fullmatch(namespace))


def body(event_type: str, at: datetime, data: dict[str, Any]) -> bytes:
    """The payload ``{type, timestamp, data}``, kept under 20 kB (long key lists are cut)."""
    payload = {"type": event_type, "timestamp": at.isoformat().replace("+00:00", "Z")}
    encoded = orjson.dumps({**payload, "data": data})
    keys = data.get("changed_keys")
    while len(encoded) > MAX_PAYLOAD_BYTES and isinstance(keys, list) and keys:
        keys = keys[: len(keys) // 2]
        data = {**data, "changed_keys": keys}
        encoded = orjson.dumps({**payload, "data": data})
    if len(encoded) > MAX_PAYLOAD_BYTES and isinstance(data.get("message"), str):
        data = {**data, "message": data["message"][:1000]}
        encoded = orjson.dumps({**payload, "data": data})
    return encoded


def delivery_row(
    endpoint: WebhookEndpoint,
    *,
    event_type: str,
    order_key: str,
    sequence: int,
    at: datetime,
    payload: bytes,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": endpoint.tenant_id,
        "endpoint_id": endpoint.id,
        "event_type": event_type,
        "order_key": order_key,
        "sequence": sequence,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "retries": 0,
        "next_attempt_at": now,
        "locked_until": None,
        "last_attempt_at": None,
        "created_at": at,
    }


def deliveries(
    event: OutboxEvent,
    endpoints: Iterable[WebhookEndpoint],
    inheritors: Sequence[NamespaceNode],
    now: datetime,
) -> list[dict[str, Any]]:
    """The delivery rows ``event`` owes (``inheritors``: the namespaces that inherit a config
    change's namespace; empty when no subscriber could want them)."""
    # An endpoint hears of what happened once it existed: the outbox may still hold, unsent,
    # changes made before it was created.
    endpoints = [
        e for e in endpoints if e.tenant_id == event.tenant_id and e.created_at <= event.created_at
    ]
    # (namespace the delivery is about, its data)
    about: list[tuple[str | None, dict[str, Any]]] = [(event.namespace, event.data)]
    if event.type == "config.changed" and event.namespace is not None:
        about = [(event.namespace, {**event.data, "source_namespace": event.namespace})]
        for node in inheritors:
            data = {
                **event.data,
                "namespace": node.name,
                "source_namespace": event.namespace,
                "inherited": True,
            }
            about.append((node.name, data))
    rows: list[dict[str, Any]] = []
    for namespace, data in about:
        payload: bytes | None = None
        for endpoint in endpoints:
            if not wants(endpoint, event.type, namespace):
                continue
            payload = payload or body(event.type, event.created_at, data)
            rows.append(
                delivery_row(
                    endpoint,
                    event_type=event.type,
                    order_key=namespace or "",
                    sequence=event.sequence,
                    at=event.created_at,
                    payload=payload,
                    now=now,
                )
            )
    return rows
