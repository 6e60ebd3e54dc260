"""The flags API: a namespace's flags with when they changed and were last evaluated, stale
flags, evaluation counts over time; counts written by one replica, read by another."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from konfig.settings import Settings
from tests.conftest import PASSWORD, Account, Backend, assert_error, make_settings, register
from tests.support.apps import client_of, running
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry

FLAG = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": {"fractional": [["on", 50], ["off", 50]]},
    "metadata": {"team": "web"},
}


async def _evaluate(client: httpx.AsyncClient, token: str, users: int) -> None:
    for i in range(users):
        answer = await client.post(
            "/ofrep/v1/evaluate/flags/beta",
            headers=bearer(token),
            json={"context": {"targetingKey": f"user-{i}"}},
        )
        assert answer.status_code == 200, answer.text


async def _scene(client: httpx.AsyncClient, owner: Account) -> tuple[str, str]:
    namespace = await make_namespace(client, owner, "web/production")
    await set_entry(client, owner, namespace, "beta", FLAG, value_type="flag")
    await set_entry(client, owner, namespace, "idle", {**FLAG, "targeting": {}}, value_type="flag")
    await set_entry(client, owner, namespace, "title", "Shop")
    token = (await make_token(client, owner, read("web/production")))["token"]
    return namespace, str(token)


async def test_flags_list_their_use_and_counts_show_per_hour(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    namespace, token = await _scene(client, owner)
    await _evaluate(client, token, 40)
    listed = await client.get(f"/api/v1/namespaces/{namespace}/flags", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    flags = {f["key"]: f for f in listed.json()["items"]}
    assert set(flags) == {"beta", "idle"}  # "title" is no flag
    beta = flags["beta"]
    assert (beta["state"], beta["default_variant"], beta["evaluations"]) == ("ENABLED", "off", 40)
    assert beta["variants"] == {"on": True, "off": False} and beta["metadata"] == {"team": "web"}
    assert beta["last_evaluated_at"] is not None and beta["stale"] is False
    assert (flags["idle"]["evaluations"], flags["idle"]["last_evaluated_at"]) == (0, None)
    counts = await client.get(
        f"/api/v1/namespaces/{namespace}/flags/beta/evaluations", headers=owner.headers
    )
    body = counts.json()
    assert sum(body["totals"].values()) == 40 and set(body["totals"]) == {"on", "off"}
    (caller, evaluated), *others = body["callers"].items()
    assert caller.startswith("token:") and evaluated == 40 and others == []
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert {datetime.fromisoformat(h["hour"]) for h in body["hours"]} == {hour}
    missing = await client.get(
        f"/api/v1/namespaces/{namespace}/flags/title/evaluations", headers=owner.headers
    )
    assert_error(missing, 404, "NOT_FOUND")
    stranger = await client.get(
        f"/api/v1/namespaces/{namespace}/flags", headers=other_tenant.headers
    )
    assert_error(stranger, 404, "NOT_FOUND")


async def test_counts_written_by_one_replica_are_read_by_another(
    backend: Backend, tmp_path: Path
) -> None:
    """Replica A counts in memory and writes once per flush; replica B, on the same database,
    sees A's counts (and its own); a stopped replica writes what it still held."""
    fast: Settings = make_settings(backend.url, tmp_path, analytics_flush_seconds=0.05)
    slow: Settings = make_settings(backend.url, tmp_path, analytics_flush_seconds=3600)
    async with running(fast) as replica_a, running(slow) as replica_b:
        async with client_of(replica_a) as a, client_of(replica_b) as b:
            owner = await register(a, "flagged")
            namespace, token = await _scene(a, owner)
            await _evaluate(a, token, 10)
            url = f"/api/v1/namespaces/{namespace}/flags"
            seen: list[dict[str, Any]] = []
            for _ in range(500):  # until A's flush lands
                seen = (await b.get(url, headers=owner.headers)).json()["items"]
                if seen[0]["evaluations"] == 10:
                    break
                await asyncio.sleep(0.02)
            assert seen[0]["key"] == "beta" and seen[0]["evaluations"] == 10
            await _evaluate(b, token, 5)  # B holds these in memory (flush: hourly)
            assert (await b.get(url, headers=owner.headers)).json()["items"][0]["evaluations"] == 15
            assert (await a.get(url, headers=owner.headers)).json()["items"][0]["evaluations"] == 10
            by_b = await b.get(f"{url}/beta/evaluations", headers=owner.headers)
            assert list(by_b.json()["callers"].values()) == [15]  # A's written, B's held
    async with running(fast) as replica_c, client_of(replica_c) as c:
        login = await c.post(
            "/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}
        )
        headers = bearer(login.json()["access_token"])
        listed = await c.get(f"/api/v1/namespaces/{namespace}/flags", headers=headers)
        assert listed.json()["items"][0]["evaluations"] == 15  # B wrote its 5 on shutdown


async def test_counts_are_written_with_analytics_off(backend: Backend, tmp_path: Path) -> None:
    """KONFIG_ANALYTICS_ENABLED=false stops the record of instances, not the flags' counts:
    they are flushed all the same (replica B, which holds none, reads A's)."""
    off = make_settings(
        backend.url, tmp_path, analytics_enabled=False, analytics_flush_seconds=0.05
    )
    slow = make_settings(backend.url, tmp_path, analytics_flush_seconds=3600)
    async with running(off) as replica_a, running(slow) as replica_b:
        async with client_of(replica_a) as a, client_of(replica_b) as b:
            owner = await register(a, "flagged-quietly")
            namespace, token = await _scene(a, owner)
            await _evaluate(a, token, 3)
            url = f"/api/v1/namespaces/{namespace}/flags"
            seen: list[dict[str, Any]] = []
            for _ in range(500):  # until A's flush lands
                seen = (await b.get(url, headers=owner.headers)).json()["items"]
                if seen[0]["evaluations"] == 3:
                    break
                await asyncio.sleep(0.02)
            assert (seen[0]["key"], seen[0]["evaluations"]) == ("beta", 3)
            clients = await b.get(f"/api/v1/namespaces/{namespace}/clients", headers=owner.headers)
            assert clients.json()["items"] == []  # no instance recorded


async def test_stale_flags(backend: Backend, tmp_path: Path) -> None:
    """With a tiny stale horizon, a flag untouched and unevaluated since is stale; evaluating
    it makes it fresh again."""
    settings = make_settings(backend.url, tmp_path, flag_stale_days=0.5 / 86400)
    async with running(settings) as app, client_of(app) as client:
        owner = await register(client, "stale")
        namespace, token = await _scene(client, owner)
        await asyncio.sleep(1.0)  # past the half-second horizon
        url = f"/api/v1/namespaces/{namespace}/flags"
        flags = {
            f["key"]: f["stale"]
            for f in (await client.get(url, headers=owner.headers)).json()["items"]
        }
        assert flags == {"beta": True, "idle": True}
        await _evaluate(client, token, 1)
        flags = {
            f["key"]: f["stale"]
            for f in (await client.get(url, headers=owner.headers)).json()["items"]
        }
        assert flags == {"beta": False, "idle": True}
        stale = await client.get("/api/v1/flags/stale", headers=owner.headers)
        assert [(f["namespace"], f["key"]) for f in stale.json()["items"]] == [
            ("web/production", "idle")
        ]
        # A token sees only the namespaces it may read.
        other = (await make_token(client, owner, read("elsewhere/*")))["token"]
        hidden = await client.get("/api/v1/flags/stale", headers=bearer(other))
        assert hidden.json()["items"] == []
