"""Structured logs: one JSON line per request, stdlib lines in the same shape, no secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from konfig.logs import configure_logging, get_logger, reset_logging
from tests.conftest import PASSWORD, Backend, login, make_settings, register, wipe
from tests.support.apps import client_of, running
from tests.support.web import browser, sign_in


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Logging configured as ``konfig serve`` does (JSON), written here instead of stdout."""
    stream = io.StringIO()
    configure_logging(log_format="json", level="INFO", stream=stream)
    try:
        yield stream
    finally:
        reset_logging()


@pytest.fixture
async def clean(backend: Backend) -> AsyncIterator[Backend]:
    yield backend
    await wipe(backend.url)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written, each of which must be one JSON object."""
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_request_logs_one_json_line(
    log_output: io.StringIO, clean: Backend, tmp_path: Path
) -> None:
    async with running(make_settings(clean.url, tmp_path)) as app, client_of(app) as client:
        owner = await register(client, "acme")
        answer = await client.get(
            f"/api/v1/users/{owner.user_id}?note=private-query-value",
            headers={**owner.headers, "X-Request-ID": "trace-42"},
        )
        assert answer.status_code == 200
        await client.get("/api/v1/no-such-route", headers={"X-Request-ID": "trace-43"})

    logged = lines(log_output)
    (line,) = [entry for entry in logged if entry.get("request_id") == "trace-42"]
    assert line["logger"] == "konfig.access"
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/users/{user_id}"
    assert line["path"] == f"/api/v1/users/{owner.user_id}"
    assert line["status"] == 200
    assert line["tenant"] == owner.tenant_id
    assert line["principal"] == f"user:{owner.user_id}"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z")
    (unmatched,) = [entry for entry in logged if entry.get("request_id") == "trace-43"]
    assert unmatched["route"] == "<unmatched>" and unmatched["status"] == 404
    assert unmatched["principal"] is None
    assert "private-query-value" not in log_output.getvalue()


async def test_a_page_names_its_signed_in_visitor(
    log_output: io.StringIO, clean: Backend, tmp_path: Path
) -> None:
    async with running(make_settings(clean.url, tmp_path)) as app, client_of(app) as client:
        owner = await register(client, "acme")
        async with browser(app) as ui:
            await sign_in(ui, owner.email)
            page = await ui.get("/ui/admin/users", headers={"X-Request-ID": "page-7"})
            assert page.status_code == 200

    (line,) = [entry for entry in lines(log_output) if entry.get("request_id") == "page-7"]
    assert line["route"] == "/ui/admin/users"
    assert line["principal"] == f"user:{owner.user_id}"
    assert line["tenant"] == owner.tenant_id


async def test_credentials_never_reach_the_logs(
    log_output: io.StringIO, clean: Backend, tmp_path: Path
) -> None:
    async with running(make_settings(clean.url, tmp_path)) as app, client_of(app) as client:
        owner = await register(client, "acme")
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": owner.email, "password": "Guess-Number-1"}
        )
        assert wrong.status_code == 401
        form = await client.post(
            "/api/v1/auth/login", data={"username": owner.email, "password": PASSWORD}
        )
        assert form.status_code == 200
        tokens = await login(client, owner.email)
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
        # Spending the same refresh token again is logged as a warning by the auth service.
        reused = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert reused.status_code == 401
        short = await client.post(
            "/api/v1/auth/register",
            json={"name": "x", "email": "o@x.example.com", "password": "Sh0rt"},
        )
        assert short.status_code == 422
        await client.get(f"/api/v1/auth/me?token={tokens['access_token']}")

    text = log_output.getvalue()
    logged = lines(log_output)
    assert any(entry.get("route") == "/api/v1/auth/login" for entry in logged)
    assert any(entry.get("logger") == "konfig.auth" for entry in logged)  # a stdlib line
    for secret in (
        PASSWORD,
        "Guess-Number-1",
        "Sh0rt",
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed.json()["access_token"],
        owner.access_token,
    ):
        assert secret not in text
    assert "Bearer" not in text


def test_stdlib_lines_share_the_shape_and_redaction(log_output: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    logging.getLogger("alembic.runtime.migration").warning("Running upgrade -> 0001")
    get_logger("konfig.test").info("entry saved", key="db_password", value="hunter2", token="t")

    def fails(password: str) -> None:
        raise RuntimeError("boom")

    secret = "-".join(("local", "secret", "value"))  # a local variable, not a source literal
    try:
        fails(secret)
    except RuntimeError:
        logging.getLogger("konfig.http").exception("unhandled error")

    uvicorn_line, alembic_line, saved, failure = lines(log_output)
    assert uvicorn_line["event"] == "Started server process [7]"
    assert uvicorn_line["logger"] == "uvicorn.error" and uvicorn_line["level"] == "info"
    assert alembic_line["logger"] == "alembic.runtime.migration"
    assert alembic_line["level"] == "warning"
    assert saved["key"] == "db_password"
    assert saved["value"] == "[redacted]" and saved["token"] == "[redacted]"
    assert "RuntimeError: boom" in failure["exception"]
    assert secret not in log_output.getvalue()  # tracebacks never render local variables
    assert "hunter2" not in log_output.getvalue()


def test_console_format_for_development() -> None:
    stream = io.StringIO()
    configure_logging(log_format="console", level="WARNING", stream=stream)
    try:
        logging.getLogger("konfig.test").info("not shown below the level")
        logging.getLogger("konfig.test").warning("shown", extra={"password": "x"})
        get_logger("konfig.test").warning("saved", password="hunter2")
    finally:
        reset_logging()
    text = stream.getvalue()
    assert "not shown" not in text
    assert "shown" in text and "saved" in text
    assert "hunter2" not in text
    assert not text.lstrip().startswith("{")


def test_uvicorn_lines_come_through_whatever_uvicorn_configured_before() -> None:
    import uvicorn

    uvicorn.Config(app="konfig.app:create_app", log_level="warning")  # sets its loggers' levels
    stream = io.StringIO()
    configure_logging(log_format="json", level="INFO", stream=stream)
    try:
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    finally:
        reset_logging()
    assert lines(stream)[0]["event"] == "Started server process [7]"
