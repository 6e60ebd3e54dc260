"""The SDK's ``set`` changes the value only; ``update`` sends exactly the fields given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from konfig.client import AsyncKonfig, Forbidden, ValidationError
from tests.conftest import Account, add_user

NS = "payments/production"


@pytest.fixture
async def sdk(app: Any, owner: Account) -> AsyncIterator[AsyncKonfig]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", owner.access_token, transport=transport) as kfg:
        yield kfg


async def test_set_keeps_the_settings_and_update_sends_only_what_is_given(
    sdk: AsyncKonfig, app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    await sdk.namespaces.create(NS)
    await sdk.configs.set(NS, "db_password", "old-secret", secret=True, description="db")
    await sdk.configs.set(NS, "pool", 10, value_type="number", validation_schema={"max_value": 100})
    rotated = await sdk.configs.set(NS, "db_password", "rotated-secret")
    assert rotated["is_secret"] is True and rotated["description"] == "db"
    resized = await sdk.configs.set(NS, "pool", 20)
    assert resized["value_type"] == "number" and resized["validation_schema"] == {"max_value": 100}
    with pytest.raises(ValidationError):
        await sdk.configs.set(NS, "pool", 500)  # the kept schema still rules

    described = await sdk.configs.update(NS, "pool", description="connections")
    assert described["value"] == 20 and described["validation_schema"] == {"max_value": 100}
    loosened = await sdk.configs.update(NS, "pool", value=500, validation_schema=None)
    assert loosened["value"] == 500 and loosened["validation_schema"] is None
    assert loosened["description"] == "connections"
    cleared = await sdk.configs.update(NS, "pool", description="")
    assert cleared["description"] == ""
    plain = await sdk.configs.update(NS, "db_password", is_secret=False)
    assert plain["is_secret"] is False and plain["value"] == "rotated-secret"

    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig(
        "http://konfig.test", editor.access_token, transport=transport
    ) as as_editor:
        with pytest.raises(Forbidden) as refused:
            await as_editor.configs.update(NS, "db_password", is_secret=True)
        assert "admin" in refused.value.message
        kept = await as_editor.configs.update(NS, "db_password", value="by-the-editor")
        assert kept["is_secret"] is False and kept["value"] == "by-the-editor"
