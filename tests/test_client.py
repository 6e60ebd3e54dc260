"""The SDK against the real app in-process (httpx ASGITransport), on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from konfig.client import (
    AsyncKonfig,
    Conflict,
    Forbidden,
    KonfigError,
    NotFound,
    PreconditionFailed,
    Unauthenticated,
    ValidationError,
)
from tests.conftest import PASSWORD, Account, add_user


@pytest.fixture
async def sdk(app: Any, owner: Account) -> AsyncIterator[AsyncKonfig]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", owner.access_token, transport=transport) as kfg:
        yield kfg


def test_the_sdk_imports_nothing_from_the_server() -> None:
    """``konfig-client`` stands alone: importing it loads no module of the server's package."""
    code = (
        "import sys, konfig_client\n"
        "server = sorted(m for m in sys.modules if m == 'konfig' or m.startswith('konfig.'))\n"
        "assert not server, server\n"
        "assert 'fastapi' not in sys.modules and 'sqlalchemy' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_konfig_client_is_still_importable_as_konfig_client_in_the_server() -> None:
    import konfig.client
    import konfig_client

    assert konfig.client.__all__ == konfig_client.__all__
    for name in konfig_client.__all__:
        assert getattr(konfig.client, name) is getattr(konfig_client, name), name


async def test_auth_register_login_me_logout(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", transport=transport) as kfg:
        created = await kfg.auth.register("initech", "peter@initech.example.com", PASSWORD)
        assert created["user"]["role"] == "owner"
        with pytest.raises(Unauthenticated):
            await kfg.auth.me()
        tokens = await kfg.auth.login("peter@initech.example.com", PASSWORD)
        assert kfg.token == tokens["access_token"]
        assert (await kfg.auth.me())["email"] == "peter@initech.example.com"
        await kfg.auth.refresh(tokens["refresh_token"])
        await kfg.auth.logout()
        assert kfg.token is None
        with pytest.raises(Unauthenticated) as caught:
            await kfg.auth.login("peter@initech.example.com", "wrong password!")
        assert caught.value.status_code == 401
        assert caught.value.message


async def test_namespaces_by_name(sdk: AsyncKonfig) -> None:
    created = await sdk.namespaces.create("payments/production", description="live")
    await sdk.namespaces.create("payments/production-eu")
    await sdk.namespaces.create("payments")
    assert await sdk.namespaces.id("payments/production") == created["id"]
    assert (await sdk.namespaces.get("payments"))["name"] == "payments"
    names = [n["name"] for n in await sdk.namespaces.list(prefix="payments/")]
    assert names == ["payments/production", "payments/production-eu"]
    updated = await sdk.namespaces.update("payments/production", description="prod")
    assert updated["description"] == "prod"
    with pytest.raises(Conflict):
        await sdk.namespaces.create("payments")
    await sdk.namespaces.delete("payments/production-eu")
    with pytest.raises(NotFound) as caught:
        await sdk.namespaces.get("payments/production-eu")
    assert "payments/production-eu" in caught.value.message


async def test_a_namespace_others_reference_is_not_deleted(sdk: AsyncKonfig) -> None:
    await sdk.namespaces.create("shared")
    await sdk.namespaces.create("payments")
    await sdk.configs.set("shared", "db_host", "db.internal")
    await sdk.configs.set("payments", "url", "postgres://${ref:shared:db_host}/pay")
    with pytest.raises(Conflict) as caught:
        await sdk.namespaces.delete("shared", force=True)
    assert "payments:url references it" in caught.value.message
    assert caught.value.details["referrers"] == ["payments"]
    await sdk.configs.delete("payments", "url")
    await sdk.namespaces.delete("shared", force=True)
    with pytest.raises(NotFound):
        await sdk.namespaces.get("shared")


async def test_typed_entries_etags_and_secrets(sdk: AsyncKonfig) -> None:
    await sdk.namespaces.create("payments/production")
    ns = "payments/production"
    entry = await sdk.configs.set(ns, "max_connections", 100, value_type="number")
    assert entry["value"] == 100 and entry["version"] == 1
    await sdk.configs.set(ns, "debug", False, value_type="boolean")
    await sdk.configs.set(ns, "limits", {"rps": 5, "burst": [1, 2]}, value_type="json")
    await sdk.configs.set(ns, "db_password", "s3cret", secret=True)
    masked = {e["key"]: e["value"] for e in await sdk.configs.list(ns)}
    assert masked == {
        "db_password": "********",
        "debug": False,
        "limits": {"rps": 5, "burst": [1, 2]},
        "max_connections": 100,
    }
    assert (await sdk.configs.get(ns, "db_password", reveal=True))["value"] == "s3cret"

    updated = await sdk.configs.set(ns, "max_connections", 200, value_type="number", if_match='"1"')
    assert updated["version"] == 2
    with pytest.raises(PreconditionFailed):
        await sdk.configs.set(ns, "max_connections", 300, value_type="number", if_match='"1"')
    with pytest.raises(ValidationError) as caught:
        await sdk.configs.set(ns, "max_connections", "many", value_type="number")
    assert caught.value.code == "VALIDATION_ERROR"

    await sdk.configs.delete(ns, "debug")
    with pytest.raises(NotFound):
        await sdk.configs.get(ns, "debug")


async def test_roles_and_tenants_map_to_exceptions(
    sdk: AsyncKonfig, app: Any, client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    await sdk.namespaces.create("payments/production")
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", viewer.access_token, transport=transport) as kfg:
        with pytest.raises(Forbidden):
            await kfg.configs.set("payments/production", "k", "v")
    async with AsyncKonfig(
        "http://konfig.test", other_tenant.access_token, transport=transport
    ) as kfg:
        with pytest.raises(NotFound):
            await kfg.namespaces.get("payments/production")


async def test_audit_lists_newest_first(sdk: AsyncKonfig) -> None:
    await sdk.namespaces.create("payments/production")
    await sdk.configs.set("payments/production", "a", "1")
    await sdk.configs.set("payments/production", "b", "2")
    events = await sdk.audit.list(namespace="payments/production", limit=2)
    assert len(events) == 2
    assert all(isinstance(e, dict) for e in events)
    with pytest.raises(KonfigError):
        await sdk.audit.list(since="not a time")


async def test_backups_take_list_and_restore(sdk: AsyncKonfig) -> None:
    await sdk.namespaces.create("payments/production")
    await sdk.configs.set("payments/production", "port", 8080, value_type="number")
    made = await sdk.backups.create()
    assert made["namespace_count"] == 1
    assert [b["id"] for b in await sdk.backups.list()] == [made["id"]]
    assert (await sdk.backups.get(made["id"]))["namespaces"][0]["name"] == "payments/production"
    assert b"payments/production" in await sdk.backups.download(made["id"])

    await sdk.configs.set("payments/production", "port", 9090, value_type="number")
    dry = await sdk.backups.restore(made["id"], dry_run=True)
    assert [c["key"] for c in dry["namespaces"][0]["changed"]] == ["port"]
    assert (await sdk.configs.get("payments/production", "port"))["value"] == 9090
    await sdk.backups.restore(made["id"])
    assert (await sdk.configs.get("payments/production", "port"))["value"] == 8080
    with pytest.raises(NotFound):
        await sdk.backups.get("20200101T000000.000Z")
