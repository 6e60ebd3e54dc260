"""Feature flags: evaluated over OFREP, written as entries of value type ``flag``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from konfig_client._base import Call, Flow, quote_segment
from konfig_client._operations import NamespaceRef, get_entry, namespace_path, update_entry

OFREP = "/ofrep/v1/evaluate/flags"


def _headers(namespace: str | None) -> dict[str, str]:
    return {"X-Konfig-Namespace": namespace} if namespace else {}


def evaluate(
    key: str, context: dict[str, Any] | None, namespace: str | None
) -> Flow[dict[str, Any]]:
    body = {"context": dict(context or {})}
    response = yield Call(
        "POST", f"{OFREP}/{quote(key, safe='')}", json=body, headers=_headers(namespace)
    )
    return response.json()  # type: ignore[no-any-return]


def evaluate_all(context: dict[str, Any] | None, namespace: str | None) -> Flow[dict[str, Any]]:
    response = yield Call(
        "POST", OFREP, json={"context": dict(context or {})}, headers=_headers(namespace)
    )
    return response.json()  # type: ignore[no-any-return]


def list_flags(namespace: NamespaceRef) -> Flow[list[dict[str, Any]]]:
    path = yield from namespace_path(namespace)
    response = yield Call("GET", f"{path}/flags")
    return response.json()["items"]  # type: ignore[no-any-return]


def stale_flags() -> Flow[list[dict[str, Any]]]:
    response = yield Call("GET", "/api/v1/flags/stale")
    return response.json()["items"]  # type: ignore[no-any-return]


def evaluations(namespace: NamespaceRef, key: str, hours: int) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    response = yield Call(
        "GET", f"{path}/flags/{quote_segment(key)}/evaluations", params={"hours": hours}
    )
    return response.json()  # type: ignore[no-any-return]


def set_state(namespace: NamespaceRef, key: str, state: str) -> Flow[dict[str, Any]]:
    """The flag's state changed, and nothing else (If-Match: no change made meanwhile is lost)."""
    entry = yield from get_entry(namespace, key)
    if entry.get("value_type") != "flag":
        raise ValueError(f"{key} is not a flag (its value type is {entry.get('value_type')})")
    definition = {**entry["value"], "state": state}
    return (
        yield from update_entry(
            namespace, key, {"value": definition}, if_match=f'"{entry["version"]}"'
        )
    )
