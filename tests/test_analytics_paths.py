"""Usage analytics on every way a client reads: a long poll woken by a change and an event
stream count as pushes, an OFREP evaluation names its instance too; and the roll-ups (minute →
hour → day) keep the sums while retention forgets what is older. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from konfig.analytics import service as analytics
from konfig.analytics.models import ClientInstance, FlagEvaluation, KeyRead, Traffic
from konfig.app import create_app
from konfig.settings import Settings
from tests.conftest import Account, Backend, backstage, make_settings
from tests.support.events import Events
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry, waiting

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
URL = "/api/v1/config/payments/production"
FLAG = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend.url, tmp_path, analytics_flush_seconds=0.05, analytics_stale_seconds=0.3
    )


async def scene(client: httpx.AsyncClient, owner: Account) -> tuple[str, str]:
    production = await make_namespace(client, owner, "payments/production")
    await set_entry(client, owner, production, "db_host", "db-1")
    token = await make_token(client, owner, read("payments/**"))
    return production, token["token"]


def named(instance: str, secret: str) -> dict[str, str]:
    return {**bearer(secret), "X-Konfig-Instance": instance, "X-Konfig-SDK": "konfig-js/0.3.0"}


async def clients_of(client: httpx.AsyncClient, owner: Account, namespace: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/namespaces/{namespace}/clients", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return {c["instance"]: c for c in answer.json()["items"]}


async def test_a_long_poll_a_stream_and_an_evaluation_are_attributed(
    client: httpx.AsyncClient, owner: Account, served: str
) -> None:
    production, secret = await scene(client, owner)
    first = await client.get(URL, headers=named("poller", secret))
    poll = await waiting(
        client,
        client.get(
            URL,
            headers={**named("poller", secret), "If-None-Match": first.headers["etag"]},
            params={"wait": 20},
        ),
    )
    async with httpx.AsyncClient(base_url=served, timeout=20) as http:
        async with http.stream("GET", f"{URL}/events", headers=named("streamer", secret)) as stream:
            events = Events(stream)
            assert (await events.next_event())["event"] == "change"  # the state it starts with
            await set_entry(client, owner, production, "db_host", "db-2")
            assert (await poll).status_code == 200
            assert (await events.next_event())["event"] == "change"  # pushed
    await set_entry(client, owner, production, "beta", FLAG, value_type="flag")
    evaluated = await client.post(
        "/ofrep/v1/evaluate/flags/beta",
        headers={**named("evaluator", secret), "X-Konfig-Namespace": "payments/production"},
        json={"context": {"targetingKey": "u-1"}},
    )
    assert evaluated.status_code == 200, evaluated.text

    seen = await clients_of(client, owner, production)
    assert set(seen) == {"poller", "streamer", "evaluator"}
    assert seen["poller"]["revision"] == seen["streamer"]["revision"] == 2
    assert seen["poller"]["last_pushed_at"] and seen["streamer"]["last_pushed_at"]
    assert seen["evaluator"]["revision"] == 3 and seen["evaluator"]["current"]
    assert seen["evaluator"]["sdk"] == "konfig-js/0.3.0" and not seen["poller"]["current"]
    traffic = await client.get(f"/api/v1/namespaces/{production}/traffic", headers=owner.headers)
    totals = traffic.json()["totals"]
    assert (totals["reads"], totals["pushes"]) == (3, 2)  # poller, streamer, evaluator; 2 pushes


async def test_roll_ups_keep_the_sums_and_retention_forgets(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    """Traffic and flag evaluations alike: minutes into hours, hours into days, and gone."""
    production, secret = await scene(client, owner)
    await set_entry(client, owner, production, "beta", FLAG, value_type="flag")
    for number in range(5):
        assert (await client.get(URL, headers=named(f"i-{number}", secret))).status_code == 200
    for number in range(3):
        evaluated = await client.post(
            "/ofrep/v1/evaluate/flags/beta",
            headers={**named(f"i-{number}", secret), "X-Konfig-Namespace": "payments/production"},
            json={"context": {"targetingKey": f"u-{number}"}},
        )
        assert evaluated.status_code == 200, evaluated.text
    state = app.state
    flags_url = f"/api/v1/namespaces/{production}/flags"

    async def spans() -> tuple[dict[int, int], dict[int, int]]:
        async with backstage(app) as session:
            reads = await session.execute(
                select(Traffic.span, func.sum(Traffic.reads)).group_by(Traffic.span)
            )
            counted = await session.execute(
                select(FlagEvaluation.span, func.sum(FlagEvaluation.count)).group_by(
                    FlagEvaluation.span
                )
            )
            return (
                {span: int(number) for span, number in reads.all()},
                {span: int(number) for span, number in counted.all()},
            )

    async def evaluations() -> int:
        listed = await client.get(flags_url, headers=owner.headers)
        return int(listed.json()["items"][0]["evaluations"])

    for _ in range(200):
        if await spans() == ({60: 8}, {60: 3}):
            break
        await asyncio.sleep(0.05)
    assert await spans() == ({60: 8}, {60: 3})  # 5 reads and 3 evaluations; 3 evaluated
    now = datetime.now(UTC)
    await analytics.compact(state.sessionmaker, now=now + timedelta(hours=3), retention_days=90)
    assert await spans() == ({3600: 8}, {3600: 3})
    assert await evaluations() == 3
    await analytics.compact(state.sessionmaker, now=now + timedelta(days=9), retention_days=90)
    assert await spans() == ({86400: 8}, {86400: 3})
    week = await client.get(
        f"/api/v1/namespaces/{production}/traffic", params={"period": "week"}, headers=owner.headers
    )
    assert week.json()["totals"]["reads"] == 8  # the day row still counts in the week's chart
    assert await evaluations() == 3  # and the day row in the flag's count
    await analytics.compact(state.sessionmaker, now=now + timedelta(days=91), retention_days=90)
    assert await spans() == ({}, {})
    assert await evaluations() == 0
    async with backstage(app) as session:
        assert await session.scalar(select(func.count()).select_from(ClientInstance)) == 0


async def test_the_record_is_bounded_and_counts_what_it_dropped(
    settings: Settings, owner: Account, client: httpx.AsyncClient
) -> None:
    """With room for two instances between flushes, a third is dropped (and counted), never
    grown into memory; after a flush there is room again."""
    _, secret = await scene(client, owner)
    bounded = settings.model_copy(
        update={"analytics_max_instances": 2, "analytics_flush_seconds": 3600}
    )
    app = create_app(bounded)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as http:
            for name in ("a", "b", "c", "a"):
                assert (await http.get(URL, headers=named(name, secret))).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert "konfig_analytics_dropped_total 1.0" in metrics
            recorder = app.state.delivery.analytics
            assert sorted(key[2] for key in recorder.entries) == [b"a", b"b"]
            await analytics.flush(recorder, app.state.sessionmaker, bounded)
            assert (await http.get(URL, headers=named("c", secret))).status_code == 200
            assert sorted(key[2] for key in recorder.entries) == [b"c"]


async def test_an_evaluation_delivers_the_flags_and_no_other_key(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    shop = await make_namespace(client, owner, "shop/production")
    await set_entry(client, owner, shop, "banner", "sale")
    await set_entry(client, owner, shop, "beta", FLAG, value_type="flag")
    token = await make_token(client, owner, read("shop/**"))
    headers = {**named("storefront", token["token"]), "X-Konfig-Namespace": "shop/production"}
    single = await client.post("/ofrep/v1/evaluate/flags/beta", headers=headers, json={})
    bulk = await client.post("/ofrep/v1/evaluate/flags", headers=headers, json={})
    again = await client.post(
        "/ofrep/v1/evaluate/flags", headers={**headers, "If-None-Match": bulk.headers["etag"]}
    )
    assert (single.status_code, bulk.status_code, again.status_code) == (200, 200, 304)
    answer = await client.get(f"/api/v1/namespaces/{shop}/key-reads", headers=owner.headers)
    read_at = {row["key"]: row["last_read_at"] for row in answer.json()["items"]}
    assert read_at["beta"] is not None and read_at["banner"] is None

    for _ in range(200):  # the same once flushed
        async with backstage(app) as session:
            flushed = await session.scalar(select(func.count()).select_from(KeyRead))
        if flushed:
            break
        await asyncio.sleep(0.05)
    async with backstage(app) as session:
        marked = (await session.execute(select(KeyRead.key))).scalars().all()
    assert marked == ["beta"]
    traffic = await client.get(f"/api/v1/namespaces/{shop}/traffic", headers=owner.headers)
    totals = traffic.json()["totals"]
    assert (totals["reads"], totals["not_modified"]) == (2, 1)


async def test_a_change_to_a_parent_makes_stale_instances_in_the_api_and_the_metric(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """The namespace's own revision does not move when its parent changes: stale is by state."""
    payments = await make_namespace(client, owner, "payments")
    production = await make_namespace(client, owner, "payments/production")
    await set_entry(client, owner, payments, "region", "eu")
    await set_entry(client, owner, production, "db_host", "db-1")
    secret = (await make_token(client, owner, read("payments/**")))["token"]
    for name in ("kept-up", "left-behind"):
        assert (await client.get(URL, headers=named(name, secret))).status_code == 200
    await set_entry(client, owner, payments, "region", "us")  # the parent changes
    assert (await client.get(URL, headers=named("kept-up", secret))).status_code == 200

    async def stale_in_metrics() -> str | None:
        text = (await client.get("/metrics")).text
        line = 'konfig_stale_instances{namespace="payments/production"} 1.0'
        return text if line in text else None

    for _ in range(200):
        if await stale_in_metrics():
            break
        await asyncio.sleep(0.05)
    assert await stale_in_metrics(), "the metric never counted the instance left behind"
    seen = await clients_of(client, owner, production)
    assert seen["left-behind"]["stale"] and seen["kept-up"]["current"]
    assert seen["left-behind"]["revision"] == seen["kept-up"]["revision"] == 1
