"""The SDK's users and sso groups against the real app in-process (ASGI), on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from konfig.client import AsyncKonfig, Forbidden, NotFound, ValidationError
from tests.conftest import PASSWORD, Account, login
from tests.support.grants import grant


@pytest.fixture
async def sdk(app: Any, owner: Account) -> AsyncIterator[AsyncKonfig]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", owner.access_token, transport=transport) as kfg:
        yield kfg


async def test_users_carry_grants_set_by_email(sdk: AsyncKonfig, client: httpx.AsyncClient) -> None:
    grants = [grant("viewer", "**"), grant("editor", "payments/**")]
    created = await sdk.users.create("dev@acme.example.com", PASSWORD, grants=grants)
    assert created["grants"] == grants and created["role"] == "viewer"
    editor = await sdk.users.create("ed@acme.example.com", PASSWORD, role="editor")
    assert editor["grants"] == [grant("editor", "**")]
    changed = await sdk.users.set_grants("DEV@acme.example.com", [grant("admin", "**")])
    assert changed["role"] == "admin"
    assert (await sdk.users.get(created["id"]))["grants"] == [grant("admin", "**")]
    assert {u["email"] for u in await sdk.users.list()} >= {"dev@acme.example.com"}
    with pytest.raises(NotFound):
        await sdk.users.get("nobody@acme.example.com")
    with pytest.raises(ValidationError):
        await sdk.users.set_grants("ed@acme.example.com", [grant("owner", "payments/**")])
    tokens = await login(client, "ed@acme.example.com")
    transport = httpx.ASGITransport(app=client._transport.app)  # type: ignore[attr-defined]
    async with AsyncKonfig(
        "http://konfig.test", tokens["access_token"], transport=transport
    ) as as_editor:
        with pytest.raises(Forbidden):
            await as_editor.users.set_grants("dev@acme.example.com", [grant("viewer", "**")])


async def test_sso_settings_go_in_and_the_secret_never_comes_out(sdk: AsyncKonfig) -> None:
    with pytest.raises(NotFound):
        await sdk.sso.get()
    settings = {
        "issuer": "https://login.acme.example.com",
        "client_id": "konfig",
        "client_secret": "s3cret-of-the-client",
        "allowed_domains": ["acme.example.com"],
        "default_grants": [grant("viewer", "**")],
    }
    answer = await sdk.sso.put(settings)
    assert answer["client_secret_set"] is True and "s3cret" not in str(answer)
    assert (await sdk.sso.get())["issuer"] == "https://login.acme.example.com"


async def test_groups_through_the_sdk(sdk: AsyncKonfig) -> None:
    await sdk.users.create("dev@acme.example.com", PASSWORD, role="viewer")
    made = await sdk.groups.create("payments-devs", [grant("editor", "payments/**")])
    assert made["members"] == []
    user = await sdk.groups.set_members_groups("dev@acme.example.com", ["payments-devs"])
    assert user["group_grants"] == [grant("editor", "payments/**")]
    changed = await sdk.groups.set_grants("payments-devs", [grant("viewer", "payments/**")])
    assert changed["members"] == ["dev@acme.example.com"]
    assert [g["name"] for g in await sdk.groups.list()] == ["payments-devs"]
    await sdk.groups.delete(made["id"])
    with pytest.raises(NotFound):
        await sdk.groups.delete("payments-devs")
