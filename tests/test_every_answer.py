"""Every answer, whichever branch of the dispatcher gave it, carries the security headers and
the request id, and leaves exactly one access-log line and one observation in the request
metrics: a read-path answer, a fast write, a FastAPI answer, a 404 and 500s."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from konfig.logs import configure_logging, flush_access_lines, reset_logging
from tests.conftest import Account, Backend, make_settings, register, wipe
from tests.support.apps import client_of, running
from tests.support.readpath import bearer, make_namespace, make_token, read, service_account

ENTRY_ROUTE = "/api/v1/namespaces/{namespace_id}/configs/{key}"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Logging configured as ``konfig serve`` does in production (JSON), written here."""
    stream = io.StringIO()
    configure_logging(log_format="json", level="INFO", stream=stream)
    try:
        yield stream
    finally:
        reset_logging()


@pytest.fixture
async def served(backend: Backend, tmp_path: Path) -> AsyncIterator[Any]:
    async with running(make_settings(backend.url, tmp_path)) as app:
        yield app
    await wipe(backend.url)


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    """``konfig_http_requests_total`` by (method, route, status), and the duration histogram's
    count by (method, route, "timed")."""
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "konfig_http_requests_total":
                counts[(labels["method"], labels["route"], labels["status"])] = sample.value
            elif sample.name == "konfig_http_request_duration_seconds_count":
                counts[(labels["method"], labels["route"], "timed")] = sample.value
    return counts


def assert_hardened(answer: httpx.Response, request_id: str) -> None:
    assert answer.headers["x-request-id"] == request_id
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def test_every_branch_answers_with_headers_one_log_line_and_one_metric(
    log_output: io.StringIO, served: Any
) -> None:
    router = APIRouter()

    @router.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("an unexpected failure")

    served.api.include_router(router)
    async with client_of(served) as client:
        owner: Account = await register(client, "acme")
        namespace = await make_namespace(client, owner, "payments")
        account = await service_account(client, owner, "reader")
        token = await make_token(client, owner, read("**"), service_account_id=account)
        entry = f"/api/v1/namespaces/{namespace}/configs/pool"

        async def broken(*_: Any) -> None:
            raise RuntimeError("the read path fails")

        def break_the_read_path() -> None:
            cache = served.state.delivery.cache
            cache.tenants.clear()
            cache.load_many = broken

        cases: list[tuple[str, str, str, dict[str, Any], int, str]] = [
            ("fast write", "PUT", entry, {"json": {"value": "v"}}, 201, ENTRY_ROUTE),
            ("read path", "GET", "/api/v1/config/payments", {}, 200, "/api/v1/config/{name}"),
            ("FastAPI", "GET", "/api/v1/namespaces", {}, 200, "/api/v1/namespaces"),
            ("404", "GET", "/api/v1/no-such-route", {}, 404, "<unmatched>"),
            ("FastAPI 500", "GET", "/test/boom", {}, 500, "/test/boom"),
            ("read path 500", "GET", "/api/v1/config/payments", {}, 500, "/api/v1/config/{name}"),
        ]
        for case, method, url, options, status, route in cases:
            if case == "read path 500":
                break_the_read_path()
            credentials = bearer(token["token"]) if url.startswith("/api/v1/config/") else {}
            request_id = "every-" + case.replace(" ", "-")
            before = request_counts((await client.get("/metrics")).text)
            answer = await client.request(
                method,
                url,
                headers={**(credentials or owner.headers), "X-Request-ID": request_id},
                **options,
            )
            after = request_counts((await client.get("/metrics")).text)

            assert answer.status_code == status, (case, answer.text)
            assert_hardened(answer, request_id)
            changed = {key: after[key] - before.get(key, 0) for key in after}
            assert {key: n for key, n in changed.items() if n and key[1] != "/metrics"} == {
                (method, route, str(status)): 1,
                (method, route, "timed"): 1,
            }, case
            flush_access_lines()  # written in batches
            logged = [
                line
                for line in map(orjson.loads, log_output.getvalue().splitlines())
                if line.get("request_id") == request_id and line.get("logger") == "konfig.access"
            ]
            assert len(logged) == 1, case
            (line,) = logged
            assert (line["method"], line["route"], line["status"]) == (method, route, status)
            assert line["level"] == ("error" if status >= 500 else "info")
            if route not in ("<unmatched>", "/test/boom"):  # the others name who asked
                assert line["tenant"] == owner.tenant_id, case
