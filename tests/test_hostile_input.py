"""Hostile input gets a 4xx in the one error shape, never a 500: deep nesting, NUL bytes, lone
surrogates, UTF-8 in headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.client import AsyncKonfig
from konfig.db.migrate import upgrade
from konfig.settings import Settings
from tests.conftest import (
    Account,
    assert_error,
    create_mariadb_database,
    drop_mariadb_database,
    make_settings,
    register,
)

JSON = {"content-type": "application/json"}


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


async def _namespace(client: httpx.AsyncClient, owner: Account, name: str = "app") -> str:
    created = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _with_message(owner: Account, message: bytes) -> dict[bytes, bytes]:
    """The owner's headers with X-Konfig-Message sent as exactly these bytes."""
    return {b"Authorization": f"Bearer {owner.access_token}".encode(), b"X-Konfig-Message": message}


def _spellings(namespace_id: str) -> list[str]:
    """The canonical id (answered by the fast write path) and one only FastAPI's route takes."""
    return [namespace_id, namespace_id.replace("-", "")]


@pytest.mark.parametrize("levels", [10_000, 1_000_000])
async def test_deep_nesting_is_refused_after_authentication(
    client: httpx.AsyncClient, owner: Account, levels: int
) -> None:
    namespace_id = await _namespace(client, owner)
    deep = nested(levels)
    for spelling in _spellings(namespace_id):
        base = f"/api/v1/namespaces/{spelling}/configs"
        sent = [
            ("POST", base, deep),
            ("POST", base, b'{"key": "k", "value": ' + deep + b"}"),
            ("PUT", f"{base}/k", b'{"value": ' + deep + b"}"),
            ("PATCH", f"{base}/k", b'{"value": ' + deep + b"}"),
            ("PUT", f"{base}/k", b'{"value": ' + deep),  # malformed, too
        ]
        for method, url, body in sent:
            anonymous = await client.request(method, url, headers=JSON, content=body)
            assert_error(anonymous, 401, "UNAUTHENTICATED")
            refused = await client.request(method, url, headers=owner.headers | JSON, content=body)
            error = assert_error(refused, 422, "VALIDATION_ERROR")
            assert "nests deeper than the limit" in error["message"], (method, url)


async def test_malformed_json_waits_for_authentication(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace_id = await _namespace(client, owner)
    for spelling in _spellings(namespace_id):
        url = f"/api/v1/namespaces/{spelling}/configs/k"
        anonymous = await client.put(url, headers=JSON, content=b'{"value": ')
        assert_error(anonymous, 401, "UNAUTHENTICATED")
        refused = await client.put(url, headers=owner.headers | JSON, content=b'{"value": ')
        error = assert_error(refused, 422, "VALIDATION_ERROR")
        assert error["details"]["errors"][0]["type"] == "json_invalid"
    anonymous = await client.post("/api/v1/namespaces", headers=JSON, content=b"{")
    assert_error(anonymous, 401, "UNAUTHENTICATED")


async def test_deep_nesting_elsewhere_is_refused(client: httpx.AsyncClient, owner: Account) -> None:
    namespace_id = await _namespace(client, owner)
    deep = nested(100_000)
    for method, url in [
        ("POST", "/api/v1/namespaces"),
        ("PATCH", f"/api/v1/namespaces/{namespace_id}"),
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/tokens"),
        ("POST", f"/api/v1/namespaces/{namespace_id}/configs/k/rollback"),
        ("PUT", f"/api/v1/namespaces/{namespace_id}/document"),
        ("POST", f"/api/v1/namespaces/{namespace_id}/import"),
    ]:
        refused = await client.request(method, url, headers=owner.headers | JSON, content=deep)
        assert 400 <= refused.status_code < 500, (method, url, refused.text)
        assert refused.json()["status"] == "error"
    for url in ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/refresh"]:
        refused = await client.post(url, headers=JSON, content=deep)
        assert 400 <= refused.status_code < 500, (url, refused.text)


async def test_nesting_within_the_limit_is_still_judged_by_the_value_rules(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace_id = await _namespace(client, owner)
    value = {"value": [[["ok"]]], "value_type": "json"}
    stored = await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/k", headers=owner.headers, json=value
    )
    assert stored.status_code == 201, stored.text
    # Brackets inside strings (escaped quotes among them) are text, not nesting.
    text = '\\"[' + "[{" * 5_000
    written = await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/k",
        headers=owner.headers,
        json={"value": [text], "value_type": "json", "description": "[" * 1000},
    )
    assert written.status_code == 200, written.text
    assert written.json()["value"] == [text]
    # Deeper than a value may nest (32 levels by default), within what a body may (48).
    too_deep = b'{"value_type": "json", "value": ' + nested(40) + b"}"
    refused = await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/k",
        headers=owner.headers | JSON,
        content=too_deep,
    )
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert "value nests deeper than the limit of 32 levels" in error["message"]


async def test_nul_in_text_fields_names_the_field(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace_id = await _namespace(client, owner)
    for spelling in _spellings(namespace_id):
        refused = await client.put(
            f"/api/v1/namespaces/{spelling}/configs/k",
            headers=owner.headers,
            json={"value": "v", "description": "a\u0000b"},
        )
        error = assert_error(refused, 422, "VALIDATION_ERROR")
        assert error["message"].startswith("description:")
        assert error["details"]["errors"][0]["loc"] == ["body", "description"]
    refused = await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/k",
        headers=owner.headers,
        json={"value": "v", "validation_schema": {"value": "\u0000"}},
    )
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert error["message"].startswith("validation_schema.value:")
    listed = await client.get(
        "/api/v1/namespaces", headers=owner.headers, params={"prefix": "a\u0000"}
    )
    error = assert_error(listed, 422, "VALIDATION_ERROR")
    assert error["message"].startswith("prefix:")


@pytest.mark.parametrize("value_type", ["string", "json"])
async def test_nul_inside_a_value_round_trips(
    client: httpx.AsyncClient, owner: Account, value_type: str
) -> None:
    namespace_id = await _namespace(client, owner)
    value = "a\u0000b" if value_type == "string" else {"k\u0000": ["\u0000"]}
    for spelling, key in zip(_spellings(namespace_id), ["fast", "routed"], strict=True):
        url = f"/api/v1/namespaces/{spelling}/configs/{key}"
        stored = await client.put(
            url, headers=owner.headers, json={"value": value, "value_type": value_type}
        )
        assert stored.status_code == 201, stored.text
        read = await client.get(url, headers=owner.headers)
        assert read.json()["value"] == value


async def test_lone_surrogate_gets_an_honest_message(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace_id = await _namespace(client, owner)
    for spelling in _spellings(namespace_id):
        for body in [b'{"value": "\\ud800"}', b'{"value": "x", "description": "a\\udfffb"}']:
            refused = await client.put(
                f"/api/v1/namespaces/{spelling}/configs/k",
                headers=owner.headers | JSON,
                content=body,
            )
            error = assert_error(refused, 422, "VALIDATION_ERROR")
            assert "lone surrogate" in error["message"]
    refused = await client.post(
        "/api/v1/namespaces", headers=owner.headers | JSON, content=b'{"name": "\\ud83d"}'
    )
    assert "lone surrogate (\\ud83d)" in assert_error(refused, 422, "VALIDATION_ERROR")["message"]


async def test_message_header_is_read_as_utf8(client: httpx.AsyncClient, owner: Account) -> None:
    namespace_id = await _namespace(client, owner)
    sent = "café ✓"
    for spelling, key in zip(_spellings(namespace_id), ["fast", "routed"], strict=True):
        url = f"/api/v1/namespaces/{spelling}/configs/{key}"
        headers = _with_message(owner, sent.encode())
        stored = await client.put(url, headers=headers, json={"value": "v"})
        assert stored.status_code == 201, stored.text
        revisions = await client.get(
            f"/api/v1/namespaces/{namespace_id}/revisions", headers=owner.headers
        )
        assert revisions.json()["items"][0]["message"] == sent
        garbled = _with_message(owner, b"caf\xe9")
        refused = await client.put(url, headers=garbled, json={"value": "w"})
        error = assert_error(refused, 422, "VALIDATION_ERROR")
        assert error["message"] == "X-Konfig-Message: is not valid UTF-8 text"
        too_long = _with_message(owner, ("✓" * 1001).encode())
        refused = await client.put(url, headers=too_long, json={"value": "w"})
        assert_error(refused, 422, "VALIDATION_ERROR")
        longest = _with_message(owner, ("✓" * 1000).encode())
        accepted = await client.put(url, headers=longest, json={"value": "w"})
        assert accepted.status_code == 200, accepted.text


async def test_value_limit_counts_the_value_not_its_json_spelling(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    namespace_id = await _namespace(client, owner)
    limit = settings.max_value_bytes
    for spelling, key in zip(_spellings(namespace_id), ["fast", "routed"], strict=True):
        url = f"/api/v1/namespaces/{spelling}/configs/{key}"
        # Quotes and escapes (each '"' is sent as two bytes) are not part of the value.
        exactly = '"' * (limit - 2) + "é"
        stored = await client.put(url, headers=owner.headers, json={"value": exactly})
        assert stored.status_code == 201, stored.text[:200]
        read = await client.get(url, headers=owner.headers)
        assert read.json()["value"] == exactly
        over = await client.put(url, headers=owner.headers, json={"value": "x" * (limit + 1)})
        error = assert_error(over, 413, "PAYLOAD_TOO_LARGE")
        assert f"value is {limit + 1} bytes" in error["message"]


async def test_the_sdk_sends_a_utf8_message(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    namespace_id = await _namespace(client, owner)
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", owner.access_token, transport=transport) as sdk:
        await sdk.configs.set("app", "k", "v", message="café ✓")
    revisions = await client.get(
        f"/api/v1/namespaces/{namespace_id}/revisions", headers=owner.headers
    )
    assert revisions.json()["items"][0]["message"] == "café ✓"


async def test_non_json_constants_and_schema_loops_are_refused(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace_id = await _namespace(client, owner)
    for spelling in _spellings(namespace_id):
        url = f"/api/v1/namespaces/{spelling}/configs/k"
        for constant in [b"NaN", b"Infinity", b"-Infinity"]:
            body = b'{"value_type": "json", "value": [' + constant + b"]}"
            refused = await client.put(url, headers=owner.headers | JSON, content=body)
            error = assert_error(refused, 422, "VALIDATION_ERROR")
            assert error["message"].startswith(constant.decode() + " is not JSON"), error
        huge = b'{"value_type": "number", "value": 1e999}'
        refused = await client.put(url, headers=owner.headers | JSON, content=huge)
        assert "must be finite" in assert_error(refused, 422, "VALIDATION_ERROR")["message"]
        loop = {
            "value": "x",
            "value_type": "json",
            "validation_schema": {"json_schema": {"$ref": "#"}},
        }
        refused = await client.put(url, headers=owner.headers, json=loop)
        assert "refers to itself" in assert_error(refused, 422, "VALIDATION_ERROR")["message"]


@pytest.mark.mariadb
async def test_mariadb_stores_what_it_is_sent_and_refuses_the_rest(tmp_path: Path) -> None:
    """Text where the database matters: NUL in a value, 4-byte UTF-8 in a message."""
    name, url = await create_mariadb_database()
    try:
        await upgrade(url)
        app = create_app(make_settings(url, tmp_path))
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                owner = await register(client, "maria")
                namespace_id = await _namespace(client, owner)
                entry = f"/api/v1/namespaces/{namespace_id}/configs/k"
                message = _with_message(owner, "déployé 🚀 ✓".encode())
                stored = await client.put(entry, headers=message, json={"value": "a\u0000b"})
                assert stored.status_code == 201, stored.text
                assert (await client.get(entry, headers=owner.headers)).json()[
                    "value"
                ] == "a\u0000b"
                revisions = await client.get(
                    f"/api/v1/namespaces/{namespace_id}/revisions", headers=owner.headers
                )
                assert revisions.json()["items"][0]["message"] == "déployé 🚀 ✓"
                for body in [
                    {"value": "v", "description": "a\u0000b"},
                    {"value": "v", "description": "\ud800"},
                ]:
                    refused = await client.put(
                        entry, headers=owner.headers | JSON, content=json.dumps(body).encode()
                    )
                    assert_error(refused, 422, "VALIDATION_ERROR")
                deep = b'{"value": ' + nested(100_000) + b"}"
                refused = await client.put(entry, headers=owner.headers | JSON, content=deep)
                assert_error(refused, 422, "VALIDATION_ERROR")
    finally:
        await drop_mariadb_database(name)
