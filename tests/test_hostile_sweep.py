"""Every operation in the OpenAPI document, with a NUL in each string it takes, answers a 422
that names the field: on PostgreSQL (which refuses NUL in text) as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from konfig.dispatch import Dispatcher
from tests.conftest import Account, assert_error

NUL = "a\u0000b"
# Values are encrypted and may hold NUL (tests/test_hostile_input.py): not swept.
ALLOWED = {"value"}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema


def _kinds(document: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's alternatives (anyOf), each resolved."""
    schema = _resolve(document, schema)
    return [_resolve(document, s) for s in schema.get("anyOf", [schema])]


def string_fields(
    document: dict[str, Any], schema: dict[str, Any], where: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each string leaf a body schema declares: where it is and a body with a NUL there."""
    for kind in _kinds(document, schema):
        if kind.get("type") == "string":
            yield where, NUL
        elif kind.get("type") == "object" and "properties" in kind:
            for name, child in kind["properties"].items():
                if name in ALLOWED:
                    continue
                for inner, body in string_fields(document, child, (*where, name)):
                    yield inner, {name: body}
        elif kind.get("type") == "array" and "items" in kind:
            for inner, body in string_fields(document, kind["items"], (*where, "0")):
                yield inner, [body]


async def _ids(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    """A real id for each path parameter, so each request reaches its route."""
    ns = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "app"})
    namespace_id = ns.json()["id"]
    entry = await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/k", headers=owner.headers, json={"value": "v"}
    )
    assert entry.status_code == 201, entry.text
    account = await client.post(
        "/api/v1/service-accounts", headers=owner.headers, json={"name": "ci"}
    )
    assert account.status_code == 201, account.text
    token = await client.post(
        "/api/v1/tokens",
        headers=owner.headers,
        json={"name": "t", "scopes": [{"namespaces": "app", "permissions": ["read"]}]},
    )
    assert token.status_code == 201, token.text
    group = await client.post("/api/v1/groups", headers=owner.headers, json={"name": "team"})
    assert group.status_code == 201, group.text
    webhook = await client.post(
        "/api/v1/webhooks",
        headers=owner.headers,
        json={"url": "https://93.184.216.34/hook", "events": ["config.changed"]},
    )
    assert webhook.status_code == 201, webhook.text
    return {
        "namespace_id": namespace_id,
        "key": "k",
        "name": "app",
        "user_id": owner.user_id,
        "service_account_id": account.json()["id"],
        "token_id": token.json()["id"],
        "group_id": group.json()["id"],
        "backup_id": "00000000-0000-0000-0000-000000000000",
        "revision": "1",
        "webhook_id": webhook.json()["id"],
        "delivery_id": "00000000-0000-0000-0000-000000000000",
        "policy_id": "00000000-0000-0000-0000-000000000000",
        "request_id": "00000000-0000-0000-0000-000000000000",
    }


def _operations(app: Dispatcher) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in app.api.openapi()["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


async def test_nul_in_any_string_is_refused_naming_it(
    client: httpx.AsyncClient, app: Dispatcher, owner: Account
) -> None:
    document = app.api.openapi()
    ids = await _ids(client, owner)
    swept: list[str] = []

    async def refused(method: str, url: str, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", owner.headers)
        answer = await client.request(method, url, **kwargs)
        assert answer.status_code < 500, (method, url, name, answer.text)
        error = assert_error(answer, 422, "VALIDATION_ERROR")
        assert error["message"].startswith(f"{name}:"), (method, url, error)
        swept.append(f"{method} {url} {name}")

    for method, path, operation in _operations(app):
        if path.endswith("/events"):  # a stream: its parameters are checked alike, shown below
            continue
        parameters = operation.get("parameters", [])
        url = path.format(**ids)
        for parameter in parameters:
            name = parameter["name"]
            if parameter["in"] == "query":
                await refused(method, url, name, params={name: NUL})
            elif parameter["in"] == "header" and name == "X-Konfig-Message":
                await refused(method, url, name, headers=owner.headers | {name: NUL})
            elif parameter["in"] == "path" and any(
                k.get("type") == "string" and "format" not in k
                for k in _kinds(document, parameter["schema"])
            ):
                await refused(method, path.format(**(ids | {name: "a%00b"})), name)
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            for where, body in string_fields(document, content["application/json"]["schema"]):
                await refused(method, url, ".".join(where), json=body)
    assert len(swept) > 60, swept


async def test_nul_in_the_read_path_name_and_events(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for url in ["/api/v1/config/a%00b", "/api/v1/config/a%00b/events"]:
        answer = await client.get(url, headers=owner.headers)
        assert 400 <= answer.status_code < 500, (url, answer.text)
    answer = await client.get("/api/v1/config/app", headers=owner.headers, params={"format": NUL})
    assert 400 <= answer.status_code < 500, answer.text
