"""Rate limits: credentials per address and per account, principals, the read path, Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from konfig.settings import Settings
from tests.conftest import (
    PASSWORD,
    REDIS_URL,
    Backend,
    assert_error,
    make_settings,
    register,
    service_missing,
    wipe,
)
from tests.support.apps import client_of, running


@pytest.fixture
async def clean(backend: Backend) -> AsyncIterator[Backend]:
    yield backend
    await wipe(backend.url)


def settings_for(backend: Backend, tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(backend.url, tmp_path, **overrides)


WRONG_PASSWORD = "WrongPassword1"


async def attempt(client: httpx.AsyncClient, email: str, password: str = WRONG_PASSWORD) -> Any:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


def rate_limited(answer: httpx.Response) -> int:
    """The answer is a 429 in the one error shape; returns its Retry-After."""
    error = assert_error(answer, 429, "RATE_LIMITED")
    retry_after = int(answer.headers["retry-after"])
    assert retry_after >= 1
    assert error["details"]["retry_after"] == retry_after
    return retry_after


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def test_password_guessing_is_throttled_per_account(clean: Backend, tmp_path: Path) -> None:
    settings = settings_for(
        clean, tmp_path, login_rate_limit="5/minute", login_address_rate_limit="1000/minute"
    )
    async with running(settings) as app, client_of(app) as client:
        owner = await register(client, "acme")  # one login
        for n in range(4):  # from changing addresses: the account is what counts
            async with client_of(app, f"10.0.0.{n}") as guesser:
                assert (await attempt(guesser, owner.email)).status_code == 401
        async with client_of(app, "10.0.1.1") as guesser:
            rate_limited(await attempt(guesser, owner.email))
            # Even the right password waits now; another account does not.
            rate_limited(await attempt(guesser, owner.email, PASSWORD))
            other = await register(guesser, "globex")
            assert other.access_token
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "konfig_rate_limited_requests_total", limit="login_account") == 2


async def test_spraying_from_one_address_is_throttled(clean: Backend, tmp_path: Path) -> None:
    settings = settings_for(
        clean, tmp_path, login_rate_limit="1000/minute", login_address_rate_limit="3/minute"
    )
    async with running(settings) as app, client_of(app, "192.0.2.7") as sprayer:
        for n in range(3):
            assert (await attempt(sprayer, f"user{n}@example.com")).status_code == 401
        rate_limited(await attempt(sprayer, "user9@example.com"))
        async with client_of(app, "192.0.2.8") as neighbour:
            assert (await attempt(neighbour, "user9@example.com")).status_code == 401
        # Registration counts apart from logins.
        created = await sprayer.post(
            "/api/v1/auth/register",
            json={"name": "acme", "email": "o@acme.example.com", "password": PASSWORD},
        )
        assert created.status_code == 201, created.text


async def test_registration_is_throttled_per_address(clean: Backend, tmp_path: Path) -> None:
    settings = settings_for(clean, tmp_path, login_address_rate_limit="2/minute")
    async with running(settings) as app, client_of(app) as client:
        for n in range(2):
            created = await client.post(
                "/api/v1/auth/register",
                json={"name": f"t{n}", "email": f"o@t{n}.example.com", "password": PASSWORD},
            )
            assert created.status_code == 201, created.text
        refused = await client.post(
            "/api/v1/auth/register",
            json={"name": "t9", "email": "o@t9.example.com", "password": PASSWORD},
        )
        rate_limited(refused)
        async with client_of(app, "10.9.9.9") as elsewhere:  # the refused one created nothing
            again = await elsewhere.post(
                "/api/v1/auth/register",
                json={"name": "t9", "email": "o@t9.example.com", "password": PASSWORD},
            )
            assert again.status_code == 201, again.text


async def test_principals_and_the_read_path_have_their_own_budgets(
    clean: Backend, tmp_path: Path
) -> None:
    settings = settings_for(clean, tmp_path, rate_limit_per_minute=3, read_rate_limit_per_minute=6)
    async with running(settings) as app, client_of(app) as client:
        owner = await register(client, "acme")
        made = await client.post(
            "/api/v1/namespaces", headers=owner.headers, json={"name": "payments/production"}
        )
        assert made.status_code == 201  # the first of the principal's 3 requests
        for _ in range(2):
            assert (await client.get("/api/v1/auth/me", headers=owner.headers)).status_code == 200
        rate_limited(await client.get("/api/v1/auth/me", headers=owner.headers))
        for _ in range(6):
            answer = await client.get("/api/v1/config/payments/production", headers=owner.headers)
            assert answer.status_code == 200
        rate_limited(await client.get("/api/v1/config/payments/production", headers=owner.headers))
        # Another principal is not affected by the first one's spending.
        other = await register(client, "globex")
        assert (await client.get("/api/v1/auth/me", headers=other.headers)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "konfig_rate_limited_requests_total", limit="principal") == 1
        assert metric(metrics, "konfig_rate_limited_requests_total", limit="read") == 1


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the local Redis, removed afterwards."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        service_missing("Redis at 127.0.0.1:6379", exc)
    prefix = f"konfig-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.mark.redis
async def test_replicas_share_limits_through_redis(
    clean: Backend, tmp_path: Path, redis_prefix: str
) -> None:
    settings = settings_for(
        clean,
        tmp_path,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        login_rate_limit="4/minute",
        login_address_rate_limit="1000/minute",
    )
    async with (
        running(settings) as first,
        running(settings) as second,
        client_of(first) as one,
        client_of(second) as two,
    ):
        owner = await register(one, "acme")  # the account's first attempt, on the first replica
        for client in (two, one, two):
            assert (await attempt(client, owner.email)).status_code == 401
        rate_limited(await attempt(two, owner.email))
        rate_limited(await attempt(one, owner.email))
        # Each replica counts only its own refusals.
        for client in (one, two):
            metrics = (await client.get("/metrics")).text
            assert metric(metrics, "konfig_rate_limited_requests_total", limit="login_account") == 1


async def test_unreachable_redis_falls_back_to_counting_in_process(
    clean: Backend, tmp_path: Path
) -> None:
    settings = settings_for(
        clean, tmp_path, redis_url="redis://127.0.0.1:1/0", login_rate_limit="3/minute"
    )
    async with running(settings) as app, client_of(app) as client:
        owner = await register(client, "acme")
        assert (await client.get("/api/v1/auth/me", headers=owner.headers)).status_code == 200
        for _ in range(2):
            assert (await attempt(client, owner.email)).status_code == 401
        rate_limited(await attempt(client, owner.email))


def test_rate_limit_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        Settings(data_dir=tmp_path, login_rate_limit="lots")
    with pytest.raises(ValueError, match="redis://"):
        Settings(data_dir=tmp_path, redis_url="http://127.0.0.1:6379")
