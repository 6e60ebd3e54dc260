"""The SDK's history and revisions calls against the real app (ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml

from konfig.client import AsyncKonfig, NotFound, ValidationError
from tests.conftest import Account

NS = "payments/production"


@pytest.fixture
async def sdk(app: Any, owner: Account) -> AsyncIterator[AsyncKonfig]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", owner.access_token, transport=transport) as kfg:
        await kfg.namespaces.create(NS)
        yield kfg


async def test_entry_history_and_rollback(sdk: AsyncKonfig) -> None:
    await sdk.configs.set(NS, "port", 8080, value_type="number")
    await sdk.configs.set(NS, "port", 9090, value_type="number")
    await sdk.configs.delete(NS, "port")
    versions = await sdk.configs.history(NS, "port")
    assert [v["action"] for v in versions] == ["delete", "update", "create"]
    assert versions[1]["value"] == 9090
    assert len(await sdk.configs.history(NS, "port", limit=1)) == 1
    back = await sdk.configs.rollback(NS, "port", 1, message="undo")
    assert back["value"] == 8080
    with pytest.raises(NotFound):
        await sdk.configs.history(NS, "nothing")


async def test_revisions_snapshots_diff_and_rollback(sdk: AsyncKonfig) -> None:
    await sdk.configs.set(NS, "a", "1")
    await sdk.configs.set(NS, "b", "2")
    await sdk.configs.set(NS, "a", "3")
    revisions = await sdk.revisions.list(NS)
    assert [r["revision"] for r in revisions] == [3, 2, 1]
    snapshot = await sdk.revisions.get(NS, 2)
    assert {e["key"]: e["value"] for e in snapshot["entries"]} == {"a": "1", "b": "2"}
    diff = await sdk.revisions.diff(NS, 1)
    assert [i["key"] for i in diff["added"]] == ["b"]
    assert [i["key"] for i in diff["changed"]] == ["a"]

    dry = await sdk.revisions.rollback(NS, 1, dry_run=True)
    assert dry["committed"] is False
    assert (await sdk.configs.get(NS, "b"))["value"] == "2"
    done = await sdk.revisions.rollback(NS, 1, message="back to one")
    assert done["committed"] and done["revision"] == 4
    assert {e["key"] for e in await sdk.configs.list(NS)} == {"a"}
    with pytest.raises(ValidationError):
        await sdk.revisions.diff(NS, -1)


async def test_documents_export_and_import(sdk: AsyncKonfig) -> None:
    await sdk.configs.set(NS, "port", 8080, value_type="number")
    current = await sdk.revisions.document(NS)
    current["entries"].append({"key": "debug", "value": True, "value_type": "boolean"})
    result = await sdk.revisions.put_document(NS, current)
    assert [i["key"] for i in result["diff"]["added"]] == ["debug"]

    exported = await sdk.revisions.export(NS, format="yaml")
    assert "debug" in exported and yaml.safe_load(exported)
    assert "PORT" in (await sdk.revisions.export(NS, format="env")).upper()

    imported = await sdk.revisions.import_(NS, "limit=5\n", format="env", dry_run=True)
    assert imported["committed"] is False
    document = '{"entries": [{"key": "timeout", "value": "30s"}]}'
    imported = await sdk.revisions.import_(NS, document, format="json")
    assert imported["committed"] is True
    assert (await sdk.configs.get(NS, "timeout"))["value"] == "30s"
