"""The OpenAPI document declares the errors each operation answers; OPTIONS and 405 list every
method a path serves."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Backend, make_settings, wipe
from tests.support.apps import client_of, running

ERROR_REF = "#/components/schemas/ErrorResponse"
OFREP_REF = "#/components/schemas/OfrepFailure"


async def _spec(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


async def test_every_operation_declares_its_errors_in_the_one_shape(
    client: httpx.AsyncClient,
) -> None:
    spec = await _spec(client)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorResponse"]["required"] == ["status", "error"]
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message", "details"}
    checked = 0
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        expected = set()
        if path.startswith("/api/v1/"):
            expected |= {"429", "503"}
        if operation.get("security"):
            expected |= {"401", "403"}
        parameters = operation.get("parameters", [])
        if any(p["in"] == "path" for p in parameters):
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"413", "415", "422"}
        if parameters:
            expected.add("422")
        if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in parameters):
            expected.add("412")
        missing = expected - set(responses)
        assert not missing, f"{method.upper()} {path} does not declare {sorted(missing)}"
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                if path.startswith("/ofrep/") and OFREP_REF in str(schema):
                    # OpenFeature's protocol has its own evaluation failures (and a 404 may
                    # also be Konfig's: no such namespace).
                    assert status in ("400", "404"), f"{method.upper()} {path} {status}"
                    continue
                assert schema == {"$ref": ERROR_REF}, f"{method.upper()} {path} {status}"
                checked += 1
    assert checked > 300


async def test_specific_errors_are_declared_where_they_happen(client: httpx.AsyncClient) -> None:
    paths = (await _spec(client))["paths"]
    assert "409" in paths["/api/v1/auth/register"]["post"]["responses"]
    assert "401" in paths["/api/v1/auth/login"]["post"]["responses"]
    assert "412" in paths["/api/v1/namespaces/{namespace_id}/configs/{key}"]["put"]["responses"]
    read = paths["/api/v1/config/{name}"]["get"]["responses"]
    assert {"304", "401", "403", "404", "409", "422", "429"} <= set(read)
    assert "Retry-After" in read["429"]["headers"]
    # An operation with nothing to refuse declares nothing it cannot answer.
    assert set(paths["/health"]["get"]["responses"]) == {"200"}


async def test_a_validation_error_answers_the_declared_shape(
    client: httpx.AsyncClient, owner: Account
) -> None:
    answer = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": 5})
    assert answer.status_code == 422
    body = answer.json()
    assert body["status"] == "error"
    assert set(body["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (
            "/api/v1/namespaces/8c5e0f36-4f2a-4a52-9c38-0d3c5a1e2b7f/configs/db_url",
            "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
        ),
        (
            "/api/v1/namespaces/8c5e0f36-4f2a-4a52-9c38-0d3c5a1e2b7f/configs",
            "GET, HEAD, POST, OPTIONS",
        ),
        ("/api/v1/users/me", "GET, HEAD, PUT, OPTIONS"),
        ("/api/v1/users/8c5e0f36-4f2a-4a52-9c38-0d3c5a1e2b7f", "GET, HEAD, PATCH, DELETE, OPTIONS"),
        ("/api/v1/config/payments/production", "GET, HEAD, OPTIONS"),
        ("/api/v1/config/payments/production/events", "GET, HEAD, OPTIONS"),
    ],
)
async def test_options_lists_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    answer = await client.options(path)
    assert answer.status_code == 204
    assert answer.headers["allow"] == allowed
    assert answer.content == b""


async def test_options_on_no_route_is_a_404(client: httpx.AsyncClient) -> None:
    answer = await client.options("/api/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


async def test_a_wrong_method_is_a_405_listing_every_method(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/v1/users/8c5e0f36-4f2a-4a52-9c38-0d3c5a1e2b7f")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, PATCH, DELETE, OPTIONS"
    assert answer.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    # /users/me is also matched by /users/{user_id}: its DELETE is not this path's.
    shadowed = await client.delete("/api/v1/users/me")
    assert shadowed.status_code == 405
    assert shadowed.headers["allow"] == "GET, HEAD, PUT, OPTIONS"


async def test_head_answers_as_get_without_a_body(
    client: httpx.AsyncClient, owner: Account
) -> None:
    got = await client.get("/api/v1/namespaces", headers=owner.headers)
    head = await client.head("/api/v1/namespaces", headers=owner.headers)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert (await client.head("/api/v1/namespaces")).status_code == 401


async def test_a_body_in_an_unread_media_type_is_a_415(
    client: httpx.AsyncClient, owner: Account
) -> None:
    answer = await client.post(
        "/api/v1/namespaces",
        headers={**owner.headers, "Content-Type": "text/plain"},
        content=b'{"name": "payments"}',
    )
    assert answer.status_code == 415
    assert answer.json()["error"]["details"] == {"accepted": ["application/json"]}
    # The document's other media types stay readable: YAML for a namespace's document.
    created = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "a"})
    document = await client.put(
        f"/api/v1/namespaces/{created.json()['id']}/document",
        headers={**owner.headers, "Content-Type": "application/yaml"},
        content=b"entries: []\n",
    )
    assert document.status_code == 200, document.text


async def test_a_body_that_is_not_utf8_is_a_422(client: httpx.AsyncClient, owner: Account) -> None:
    answer = await client.post(
        "/api/v1/namespaces",
        headers={**owner.headers, "Content-Type": "application/json"},
        content=b"\xff\xfe{",
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_a_version_beyond_the_columns_range_is_a_422(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """Found by schemathesis: PostgreSQL answered 500 to a rollback to version 133151465079."""
    created = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "a"})
    ns = created.json()["id"]
    await client.post(
        f"/api/v1/namespaces/{ns}/configs", headers=owner.headers, json={"key": "k", "value": "v"}
    )
    for method, path, body in [
        ("POST", f"/api/v1/namespaces/{ns}/configs/k/rollback", {"version": 133151465079}),
        ("POST", f"/api/v1/namespaces/{ns}/rollback", {"revision": 2**31}),
        ("GET", f"/api/v1/namespaces/{ns}/revisions/{2**31}", None),
    ]:
        answer = await client.request(method, path, headers=owner.headers, json=body)
        assert answer.status_code == 422, (path, answer.text)


async def test_cors_preflights_stay_the_cors_middlewares_and_plain_options_list_methods(
    backend: Backend, tmp_path: Path
) -> None:
    allowed = "https://ui.example.com"
    settings = make_settings(backend.url, tmp_path, cors_origins=[allowed])
    path = "/api/v1/namespaces/8c5e0f36-4f2a-4a52-9c38-0d3c5a1e2b7f/configs/db_url"
    async with running(settings) as app, client_of(app) as client:
        preflight = await client.options(
            path, headers={"Origin": allowed, "Access-Control-Request-Method": "PUT"}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        plain = await client.options(path, headers={"Origin": allowed})
        assert plain.status_code == 204
        assert plain.headers["allow"] == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
        assert plain.headers["access-control-allow-origin"] == allowed
    await wipe(backend.url)


async def test_a_history_cursor_not_holding_a_number_is_a_422(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """A cursor the server never gave out is refused alike on every list (history answered 500)."""
    created = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "a"})
    ns = created.json()["id"]
    await client.post(
        f"/api/v1/namespaces/{ns}/configs", headers=owner.headers, json={"key": "k", "value": "v"}
    )
    await client.post(
        f"/api/v1/namespaces/{ns}/configs", headers=owner.headers, json={"key": "j", "value": "v"}
    )
    for position in (b'["x"]', b"[true]", b"[99999999999]"):
        cursor = base64.urlsafe_b64encode(position).decode().rstrip("=")
        for path in (
            f"/api/v1/namespaces/{ns}/revisions",
            f"/api/v1/namespaces/{ns}/configs/k/history",
        ):
            answer = await client.get(path, headers=owner.headers, params={"cursor": cursor})
            assert answer.status_code == 422, (path, position, answer.text)
    pages = await client.get(
        f"/api/v1/namespaces/{ns}/revisions", headers=owner.headers, params={"limit": 1}
    )
    following = await client.get(
        f"/api/v1/namespaces/{ns}/revisions",
        headers=owner.headers,
        params={"cursor": pages.json()["next_cursor"]},
    )
    assert following.status_code == 200
    assert [r["revision"] for r in following.json()["items"]] == [1]


async def test_the_uis_pages_answer_their_first_request_whatever_it_is(
    client: httpx.AsyncClient,
) -> None:
    """The UI's pages are included on the first request under /ui (konfig.web.routes): after
    the route table was built without them, every kind of first request finds them there."""
    assert (await client.options("/api/v1/users/me")).status_code == 204  # table built
    options = await client.options("/ui/login")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    wrong = await client.delete("/ui/login")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    # /ui/namespaces (POST) is also matched by /ui/namespaces/{namespace_id} (GET).
    shadowed = await client.get("/ui/namespaces")
    assert shadowed.status_code == 405
    assert shadowed.headers["allow"] == "POST, OPTIONS"
    page = await client.get("/ui/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert (await client.get("/ui/no-such-page")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("OPTIONS", "/api/v1/webhooks", 204, "GET, HEAD, POST, OPTIONS"),
        ("DELETE", "/api/v1/groups", 405, "GET, HEAD, POST, OPTIONS"),
        ("PUT", "/api/v1/users/me", 401, None),  # users' route, behind its sign-in
        ("GET", "/api/v1/namespaces/x/template", 401, None),  # environments' route: no 404
        ("GET", "/api/v1/no-such-thing", 404, None),
    ],
)
async def test_the_features_routes_answer_their_first_request_whatever_it_is(
    client: httpx.AsyncClient, method: str, path: str, status: int, allow: str | None
) -> None:
    """The features' routes are included after start-up, or by the first request that could
    need them (konfig.routing.DeferredRoutes): a first request never misses them."""
    assert (await client.get("/health")).status_code == 200  # answers without them
    answer = await client.request(method, path)
    assert answer.status_code == status, answer.text
    assert answer.headers.get("allow") == allow


async def _document_after(settings: Any, *requests: str, background: str = "") -> bytes:
    async with running(settings) as app:
        async with client_of(app) as client:
            loading: asyncio.Task[None] | None = None
            if background:  # what konfig.ops.server runs once the server listens
                (job,) = app.state.after_start
                loading = asyncio.create_task(job())
                for _ in range(int(background)):  # some of its steps taken
                    await asyncio.sleep(0)
            for path in requests:
                await client.get(path)
            if loading is not None:
                await loading
            answer = await client.get("/openapi.json")
            assert answer.status_code == 200
            return answer.content


async def test_the_document_is_the_same_whichever_way_the_routes_came_in(
    settings: Any,
) -> None:
    """Included after start-up, a step at a time or at once, or by a request midway, the
    features' routes are in the order they are declared in: the document is byte for byte
    the same, and lists them before the operations routes."""
    first = await _document_after(settings)
    assert await _document_after(settings, "/health", "/api/v1/users/me") == first
    assert await _document_after(settings, background="1000") == first
    assert await _document_after(settings, "/api/v1/users/me", background="3") == first
    paths = list(json.loads(first)["paths"])
    assert paths[0] == "/api/v1/auth/register"
    assert paths.index("/health") > max(i for i, p in enumerate(paths) if p.startswith("/api/"))


_DOCUMENT = """
import hashlib, json, os, sys
from konfig.app import create_app
from tests.conftest import make_settings
from pathlib import Path
document = create_app(make_settings(sys.argv[1], Path(sys.argv[2]))).api.openapi()
print(hashlib.sha256(json.dumps(document).encode()).hexdigest())
"""


def test_the_document_is_the_same_in_every_process(tmp_path: Path) -> None:
    """Byte for byte, whatever the process's string hashing (a set's order follows it)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}"  # only named: the document reads none
    digests = set()
    for seed in ("1", "2"):
        made = subprocess.run(
            [sys.executable, "-c", _DOCUMENT, url, str(tmp_path)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(made.stdout.strip())
    assert len(digests) == 1
