"""A merge checks again what a proposal was checked against: here the namespace's key limit,
reached by another request merged meanwhile."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, assert_error, make_settings
from tests.support.changes import done, propose, protect, step
from tests.support.grants import add_granted, grant
from tests.support.readpath import make_namespace, set_entry

EDITOR = [grant("viewer", "**"), grant("editor", "payments/**")]


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend.url, tmp_path, max_keys_per_namespace=2)


async def test_a_merge_that_would_break_a_limit_reached_meanwhile_is_refused(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await set_entry(client, owner, production, "a", "1")
    await protect(client, owner, "payments/production", allow_self_approval=True)
    alice = await add_granted(client, owner, "alice@acme.example.com", EDITOR)
    bob = await add_granted(client, owner, "bob@acme.example.com", EDITOR)
    first = (await propose(client, alice, production, "b", "2"))["id"]
    second = (await propose(client, bob, production, "c", "3"))["id"]  # 2 keys: fine, for now
    for author, request in ((alice, first), (bob, second)):
        await done(client, author, request, "submit")
        approved = await done(client, author, request, "approve")  # self-approval allowed
        assert approved["status"] == "approved"
    await done(client, alice, first, "merge")
    refused = assert_error(await step(client, bob, second, "merge"), 422, "VALIDATION_ERROR")
    assert refused["details"]["rule"] == "max_keys_per_namespace"
    still = (await client.get(f"/api/v1/change-requests/{second}", headers=bob.headers)).json()
    assert still["status"] == "approved"  # nothing happened: it can be merged once there is room
    resolved = await client.get("/api/v1/config/payments/production", headers=owner.headers)
    assert resolved.json() == {"a": "1", "b": "2"}
