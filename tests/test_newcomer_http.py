"""Answers a newcomer understands: the media type to send, where JSON is broken, an unquoted
If-Match, a trailing slash, a name where an id goes, and the tenant name rule in words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, Account, assert_error
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry

# What is tested here is HTTP, the same on every database.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

JSON = {"Content-Type": "application/json"}


async def test_another_media_type_or_none_is_a_415_naming_json(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "app")
    sent: list[tuple[str, str, dict[str, str]]] = [
        ("POST", "/api/v1/namespaces", {"Content-Type": "text/plain"}),
        ("POST", "/api/v1/namespaces", {}),  # a body and no Content-Type at all
        ("POST", "/api/v1/namespaces", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("PUT", f"/api/v1/namespaces/{namespace}/configs/k", {"Content-Type": "text/plain"}),
        ("PUT", f"/api/v1/namespaces/{namespace}/configs/k", {}),
    ]
    for method, url, headers in sent:
        answer = await client.request(
            method, url, headers=owner.headers | headers, content=b'{"name": "x", "value": 1}'
        )
        error = assert_error(answer, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert "Content-Type: application/json" in error["message"], (method, url, headers)
        assert error["details"]["accepted"] == ["application/json"]

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"name": "x"}'

    streamed = await client.post("/api/v1/namespaces", headers=owner.headers, content=chunked())
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert_error(streamed, 415, "UNSUPPORTED_MEDIA_TYPE")
    # A POST without a body is not refused for its missing Content-Type.
    bare = await client.post(f"/api/v1/namespaces/{namespace}/configs", headers=owner.headers)
    assert_error(bare, 422, "VALIDATION_ERROR")


async def test_malformed_json_is_refused_alike_with_its_line_and_column(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "app")
    broken = b'{\n  "name": "x",\n  "value": \n}'
    urls = [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/namespaces"),
        ("PATCH", f"/api/v1/namespaces/{namespace}"),
        ("POST", f"/api/v1/namespaces/{namespace}/configs"),
        ("PUT", f"/api/v1/namespaces/{namespace}/configs/k"),  # the fast write path
        ("PUT", f"/api/v1/namespaces/{namespace.replace('-', '')}/configs/k"),  # FastAPI's
        ("PUT", f"/api/v1/namespaces/{namespace}/document"),
    ]
    messages = set()
    for method, url in urls:
        answer = await client.request(method, url, headers=owner.headers | JSON, content=broken)
        error = assert_error(answer, 422, "VALIDATION_ERROR")
        assert (error["details"]["line"], error["details"]["column"]) == (4, 1), url
        messages.add(error["message"])
    assert messages == {"the body is not valid JSON: Expecting value (line 4, column 1)"}


async def test_an_unquoted_if_match_names_the_version(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "app")
    await set_entry(client, owner, namespace, "greeting", "hello")
    url = f"/api/v1/namespaces/{namespace}/configs/greeting"
    for spelling, version in (("1", 1), ('"2"', 2), ('W/"3"', 3), ("2, 4", 4)):
        answer = await client.put(
            url, headers=owner.headers | {"If-Match": spelling}, json={"value": f"v{version}"}
        )
        assert answer.status_code == 200, (spelling, answer.text)
        assert answer.json()["version"] == version + 1
    stale = await client.patch(url, headers=owner.headers | {"If-Match": "1"}, json={"value": "x"})
    error = assert_error(stale, 412, "PRECONDITION_FAILED")
    assert error["details"]["current_version"] == 5


async def test_a_trailing_slash_answers_as_the_path_without_it(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "app")
    await set_entry(client, owner, namespace, "greeting", "hello")
    created = await client.post("/api/v1/namespaces/", headers=owner.headers, json={"name": "b"})
    assert created.status_code == 201, created.text
    listed = await client.get("/api/v1/namespaces/", headers=owner.headers)
    assert [n["name"] for n in listed.json()["items"]] == ["app", "b"]
    entry = await client.get(
        f"/api/v1/namespaces/{namespace}/configs/greeting/", headers=owner.headers
    )
    assert entry.status_code == 200 and entry.json()["value"] == "hello"
    written = await client.put(
        f"/api/v1/namespaces/{namespace}/configs/greeting/",
        headers=owner.headers,
        json={"value": "hi"},
    )
    assert written.status_code == 200, written.text
    anonymous = await client.get("/api/v1/namespaces/")
    assert_error(anonymous, 401, "UNAUTHENTICATED")
    missing = await client.get("/api/v1/no-such-route/", headers=owner.headers)
    assert_error(missing, 404, "NOT_FOUND")
    for answer in (created, listed, entry, written, anonymous, missing):
        assert "location" not in answer.headers
    page = await client.get("/health/")  # outside the API nothing changes
    assert page.status_code != 200 or page.headers["content-type"].startswith("application/json")


async def test_a_name_where_an_id_goes_says_so(client: httpx.AsyncClient, owner: Account) -> None:
    await make_namespace(client, owner, "payments")
    for method, url, body in [
        ("GET", "/api/v1/namespaces/payments", None),
        ("GET", "/api/v1/namespaces/payments/configs", None),
        ("PUT", "/api/v1/namespaces/payments/configs/k", {"value": "v"}),
    ]:
        answer = await client.request(method, url, headers=owner.headers, json=body)
        error = assert_error(answer, 422, "VALIDATION_ERROR")
        assert error["message"].startswith(
            "namespace_id: 'payments' is not an id: this path takes the namespace's id (a UUID), "
            "not its name"
        ), error
        assert "?prefix=" in error["message"]
    user = await client.get("/api/v1/users/alice", headers=owner.headers)
    error = assert_error(user, 422, "VALIDATION_ERROR")
    assert "takes the user's id (a UUID)" in error["message"]


async def test_the_tenant_name_rule_is_said_in_words(client: httpx.AsyncClient) -> None:
    body: dict[str, Any] = {"email": "a@example.com", "password": PASSWORD}
    for name in ("Acme Corp", "-acme", "a" * 64, ""):
        answer = await client.post("/api/v1/auth/register", json=body | {"name": name})
        error = assert_error(answer, 422, "VALIDATION_ERROR")
        assert "is not a tenant name: use 1 to 63 lowercase letters, digits" in error["message"]
        assert "^" not in error["message"] and "Value error" not in error["message"]
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["RegisterRequest"]["properties"]["name"]["pattern"] == (
        "^[a-z0-9][a-z0-9_.-]{0,62}$"
    )


async def test_history_names_its_users_by_email_to_users_only(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "app")
    await set_entry(client, owner, namespace, "greeting", "hello")
    token = await make_token(client, owner, read("**"))
    revisions = f"/api/v1/namespaces/{namespace}/revisions"
    versions = f"/api/v1/namespaces/{namespace}/configs/greeting/history"
    for url in (revisions, versions):
        seen = (await client.get(url, headers=owner.headers)).json()["items"]
        assert [item["actor_email"] for item in seen] == [owner.email], url
        assert seen[0]["actor"] == f"user:{owner.user_id}"
        by_token = await client.get(url, headers=bearer(token["token"]))
        assert by_token.status_code == 200, by_token.text
        assert [item["actor_email"] for item in by_token.json()["items"]] == [None]
