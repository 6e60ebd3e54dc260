"""The outbox on every backend: each committed revision writes exactly one event in its own
transaction, whichever path wrote it; a refused change writes none; failed backups and failing
endpoints are reported; old attempts are pruned."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from konfig.db.base import utcnow
from konfig.db.outbox import OutboxEvent
from konfig.revisions.models import Revision
from konfig.settings import Settings
from konfig.webhooks.models import WebhookAttempt
from tests.conftest import Account, Backend, assert_error, backstage, make_settings
from tests.support.readpath import make_namespace, put_entry
from tests.support.webhooks import deliveries, receiving, settled, subscribe

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend.url,
        tmp_path,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_poll_seconds=0.2,
        webhook_retry_delays=[0.1] * 50,
        webhook_disable_after_seconds=0.5,
        webhook_timeout_seconds=2,
        webhooks_enabled=False,  # the events stay in the outbox until a test sends them
    )


async def outbox_and_revisions(app: Any) -> tuple[list[tuple[str, int]], int]:
    async with backstage(app) as session:
        events = (
            await session.execute(
                select(OutboxEvent.namespace, OutboxEvent.sequence)
                .where(OutboxEvent.type == "config.changed")
                .order_by(OutboxEvent.namespace, OutboxEvent.sequence)
            )
        ).all()
        revisions = (await session.execute(select(func.count()).select_from(Revision))).scalar()
    return [(str(ns), int(seq)) for ns, seq in events], int(revisions or 0)


async def test_every_write_path_commits_one_event_per_revision_and_a_refused_one_none(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    namespace = await make_namespace(client, owner, "payments")
    base = f"/api/v1/namespaces/{namespace}"
    assert (await put_entry(client, owner.headers, namespace, "a", "1")).status_code == 201
    document = {"entries": [{"key": "a", "value": "2"}, {"key": "b", "value": "x"}]}
    assert (
        await client.put(f"{base}/document", headers=owner.headers, json=document)
    ).status_code == 200
    imported = await client.post(
        f"{base}/import",
        headers={**owner.headers, "Content-Type": "text/plain"},
        params={"format": "env"},
        content=b"C=3\n",
    )
    assert imported.status_code == 200, imported.text
    rolled = await client.post(f"{base}/rollback", headers=owner.headers, json={"revision": 1})
    assert rolled.status_code == 200, rolled.text
    # Refused: a bad value type, a stale If-Match; nothing of either is committed.
    bad = {"entries": [{"key": "n", "value": "x", "value_type": "number"}]}
    assert_error(
        await client.put(f"{base}/document", headers=owner.headers, json=bad),
        422,
        "VALIDATION_ERROR",
    )
    stale = await client.put(
        f"{base}/configs/a", headers={**owner.headers, "If-Match": '"99"'}, json={"value": "z"}
    )
    assert_error(stale, 412, "PRECONDITION_FAILED")
    events, revisions = await outbox_and_revisions(app)
    assert events == [("payments", n) for n in range(1, revisions + 1)]
    assert revisions == 4


async def test_a_failed_backup_is_reported(
    client: httpx.AsyncClient, owner: Account, app: Any, settings: Settings
) -> None:
    backups = settings.data_dir / "backups"
    backups.parent.mkdir(parents=True, exist_ok=True)
    backups.write_text("not a directory")  # every backup fails to be written
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, ["backup.failed"])
        await app.state.webhooks.fan_out()
        failed = await client.post("/api/v1/backups", headers=owner.headers)
        assert failed.status_code >= 500, failed.text
        worker = app.state.webhooks
        for _ in range(100):  # the failure's event is written in a task of its own
            if await worker.fan_out():
                break
            await asyncio.sleep(0.05)
        assert await worker.dispatch() == 1
        await worker.settle()
        (request,) = await receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert payload["type"] == "backup.failed" and payload["data"]["tenant"] == "acme"


async def test_an_endpoint_failing_past_the_limit_is_disabled_and_audited(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    worker = app.state.webhooks
    await worker.fan_out()
    with receiving(lambda _n, _r: (500, {}, b"down")) as receiver:
        hook = await subscribe(client, owner, receiver.url)
        await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=owner.headers)
        worker.start()
        try:
            for _ in range(200):
                read = (
                    await client.get(f"/api/v1/webhooks/{hook['id']}", headers=owner.headers)
                ).json()
                if not read["enabled"]:
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
    assert read["enabled"] is False and "failed for" in read["disabled_reason"]
    assert read["failing_since"] is not None
    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "webhook.disable"}
    )
    assert len(audit.json()["items"]) == 1
    again = await client.patch(
        f"/api/v1/webhooks/{hook['id']}", headers=owner.headers, json={"enabled": True}
    )
    assert again.json()["disabled_reason"] is None and again.json()["failing_since"] is None
    log = await deliveries(client, owner, hook["id"], status="pending")
    assert len(log) == 1 and len(log[0]["log"]) >= 2


async def test_old_attempts_are_pruned_and_the_log_filters_by_status_and_time(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    worker = app.state.webhooks
    await worker.fan_out()
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url)
        await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=owner.headers)
        assert await worker.dispatch() == 1
        await worker.settle()
        await receiver.wait_for(1)
    (done,) = await settled(client, owner, hook["id"], 1)
    assert await deliveries(client, owner, hook["id"], status="pending") == []
    later = (utcnow() + timedelta(minutes=1)).isoformat()
    assert await deliveries(client, owner, hook["id"], since=later) == []
    assert [d["id"] for d in await deliveries(client, owner, hook["id"], until=later)] == [
        done["id"]
    ]
    await worker.prune(utcnow() + timedelta(days=31))
    assert await deliveries(client, owner, hook["id"]) == []
    async with backstage(app) as session:
        assert (
            await session.execute(select(func.count()).select_from(WebhookAttempt))
        ).scalar() == 0
    await worker.refresh_stats()
    assert "konfig_webhook_queue_depth 0.0" in (await client.get("/metrics")).text


async def test_an_endpoint_hears_only_of_changes_made_once_it_existed(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    namespace = await make_namespace(client, owner, "payments/production")
    await put_entry(client, owner.headers, namespace, "db_host", "db1")  # before: unsent
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, ["config.changed"])
        await put_entry(client, owner.headers, namespace, "db_host", "db2")
        worker = app.state.webhooks
        await worker.fan_out()  # both changes are fanned out now, after the endpoint exists
        assert await worker.dispatch() == 1
        await worker.settle()
        (request,) = await receiver.wait_for(1)
    data = request.verified(hook["secret"])["data"]
    assert data["changed_keys"] == ["db_host"] and data["new_revision"] == 2, data
