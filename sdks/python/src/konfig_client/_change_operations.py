"""Flows for protected namespaces: protection policies and change requests (see ``_base`` for
what a flow is)."""

from __future__ import annotations

import uuid
from typing import Any

from konfig_client._base import API, Call, Flow, paginate, quote_segment

Ref = str | uuid.UUID
POLICIES = f"{API}/protection-policies"
REQUESTS = f"{API}/change-requests"


def _policy(policy: Ref) -> str:
    return f"{POLICIES}/{quote_segment(str(policy))}"


def _request(request: Ref) -> str:
    return f"{REQUESTS}/{quote_segment(str(request))}"


def list_policies() -> Flow[list[dict[str, Any]]]:
    response = yield Call("GET", POLICIES)
    return response.json()  # type: ignore[no-any-return]


def create_policy(rules: dict[str, Any]) -> Flow[dict[str, Any]]:
    response = yield Call("POST", POLICIES, json=rules)
    return response.json()  # type: ignore[no-any-return]


def get_policy(policy: Ref) -> Flow[dict[str, Any]]:
    response = yield Call("GET", _policy(policy))
    return response.json()  # type: ignore[no-any-return]


def update_policy(policy: Ref, changes: dict[str, Any]) -> Flow[dict[str, Any]]:
    response = yield Call("PATCH", _policy(policy), json=changes)
    return response.json()  # type: ignore[no-any-return]


def delete_policy(policy: Ref) -> Flow[None]:
    yield Call("DELETE", _policy(policy))


def list_requests(
    *,
    namespace_id: Ref | None = None,
    status: str | None = None,
    mine: bool = False,
    waiting_for_me: bool = False,
    limit: int | None = None,
) -> Flow[list[dict[str, Any]]]:
    params = {
        "namespace_id": None if namespace_id is None else str(namespace_id),
        "status": status,
        "mine": "true" if mine else None,
        "waiting_for_me": "true" if waiting_for_me else None,
        "limit": min(limit or 200, 200),
    }
    return (yield from paginate(REQUESTS, params, max_items=limit))


def get_request(request: Ref, *, reveal: bool = False) -> Flow[dict[str, Any]]:
    params = {"reveal": "true"} if reveal else None
    response = yield Call("GET", _request(request), params=params)
    return response.json()  # type: ignore[no-any-return]


def act(request: Ref, action: str, body: dict[str, Any] | None = None) -> Flow[dict[str, Any]]:
    """``POST …/{id}/{action}``: submit, approve, reject, merge, comment."""
    response = yield Call("POST", f"{_request(request)}/{action}", json=body)
    return response.json()  # type: ignore[no-any-return]
