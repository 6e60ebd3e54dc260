"""The kill switch across replicas: two `konfig serve` processes on one PostgreSQL database;
a flag disabled through one is announced on the other's OFREP event stream, and evaluated there
as disabled from then on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import orjson
import pytest

from konfig.security.crypto import new_key_line
from tests.conftest import PASSWORD
from tests.support.servers import start_replica

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SWITCH = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": "on",
}


@pytest.fixture(scope="module")
def replicas(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATABASE_URL": database_url,
        "KONFIG_SECRET_KEY": "replica-test-secret-key-that-is-long-enough",
        "KONFIG_ENCRYPTION_KEYS": new_key_line(),
    }
    started = []
    try:
        for name in ("flags-a", "flags-b"):
            started.append(start_replica(env, tmp_path_factory.mktemp(name)))
        yield [url for _, url in started]
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            assert proc.wait(timeout=30) == 0


async def test_a_flag_disabled_on_one_replica_is_disabled_on_the_other(
    replicas: list[str],
) -> None:
    a, b = replicas
    async with httpx.AsyncClient(timeout=40) as http:
        email = "owner@killswitch.example.com"
        registered = await http.post(
            f"{a}/api/v1/auth/register",
            json={"name": "killswitch", "email": email, "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        login = await http.post(
            f"{a}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        owner = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made = await http.post(f"{a}/api/v1/namespaces", headers=owner, json={"name": "shop"})
        flag_url = f"{a}/api/v1/namespaces/{made.json()['id']}/configs/payments"
        put = await http.put(flag_url, headers=owner, json={"value": SWITCH, "value_type": "flag"})
        assert put.status_code == 201, put.text
        scopes = [{"namespaces": "shop", "permissions": ["read"]}]
        token = await http.post(
            f"{a}/api/v1/tokens", headers=owner, json={"name": "shop", "scopes": scopes}
        )
        reader = {"Authorization": f"Bearer {token.json()['token']}"}
        context = {"context": {"targetingKey": "u-1"}}

        on_b = await http.post(
            f"{b}/ofrep/v1/evaluate/flags/payments", headers=reader, json=context
        )
        assert (on_b.json()["value"], on_b.json()["reason"]) == (True, "TARGETING_MATCH")
        async with http.stream("GET", f"{b}/ofrep/v1/events", headers=reader) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            disabled = await http.put(
                flag_url, headers=owner, json={"value": {**SWITCH, "state": "DISABLED"}}
            )
            assert disabled.status_code == 200, disabled.text

            async def announced() -> dict[str, object]:
                async for line in lines:
                    if line.startswith("data: "):
                        return dict(orjson.loads(line[6:]))
                raise AssertionError("the stream ended")

            event = await asyncio.wait_for(announced(), 30)
            assert event["type"] == "refetchEvaluation"
        off_b = await http.post(
            f"{b}/ofrep/v1/evaluate/flags/payments", headers=reader, json=context
        )
        assert (off_b.json()["value"], off_b.json()["reason"]) == (False, "DISABLED")
