"""The webhooks page: create (the secret shown once), the deliveries with status in words and
colour, test, redeliver, disable and delete, the notice of a webhook Konfig disabled, and
admins only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, add_user, make_settings
from tests.support.web import browser, csrf_of, post_form, sign_in, text_of
from tests.support.webhooks import Received, receiving, settled

PAGE = "/ui/admin/webhooks"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend.url,
        tmp_path,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_poll_seconds=0.2,
    )


async def add_webhook(client: httpx.AsyncClient, url: str, events: list[str]) -> httpx.Response:
    opened = await client.get(PAGE)
    assert opened.status_code == 200, opened.text
    return await client.post(
        PAGE,
        data={
            "url": url,
            "events": events,
            "namespaces": "**",
            "description": "CI",
            "csrf_token": csrf_of(opened.text),
        },
    )


async def test_an_admin_adds_a_webhook_sees_its_secret_once_and_its_deliveries(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    with receiving() as receiver:
        made = await add_webhook(client, receiver.url, ["config.changed", "token.revoked"])
        assert made.status_code == 200, made.text
        assert made.headers["cache-control"] == "no-store"
        secret = re.search(r'id="new-secret" class="code" value="(whsec_[^"]+)"', made.text)
        assert secret and "shown only this once" in made.text
        again = await client.get(PAGE)
        assert secret.group(1) not in again.text  # once
        link = re.search(r'href="(/ui/admin/webhooks/[0-9a-f-]{36})"', again.text)
        assert link and receiver.url in again.text
        detail = link.group(1)
        tested = await post_form(client, detail, f"{detail}/test", {})
        assert tested.status_code == 303
        (ping,) = await receiver.wait_for(1)
        assert ping.verified(secret.group(1))["type"] == "webhook.test"
        hook_id = detail.rsplit("/", 1)[1]
        await settled(client, owner, hook_id, 1)
        shown = await client.get(detail)
        assert 'class="status active">succeeded</span>' in shown.text
        assert "HTTP 200" in text_of(shown.text) and ping.message_id in shown.text
        delivery = re.search(
            rf'action="({detail}/deliveries/[0-9a-f-]{{36}}/redeliver)"', shown.text
        )
        assert delivery
        assert (await post_form(client, detail, delivery.group(1), {})).status_code == 303
        assert (await receiver.wait_for(2))[1].message_id == ping.message_id
    off = await post_form(client, detail, f"{detail}/enabled", {"enabled": "0"})
    assert off.status_code == 303
    assert 'class="status inactive">disabled</span>' in (await client.get(detail)).text
    gone = await post_form(client, detail, f"{detail}/delete", {})
    assert gone.status_code == 303
    assert "No webhooks yet" in text_of((await client.get(PAGE)).text)


async def test_a_refused_url_is_named_beside_the_field_and_viewers_are_kept_out(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    await sign_in(client, owner.email)
    refused = await add_webhook(client, "http://169.254.169.254/latest", ["config.changed"])
    assert refused.status_code == 422
    assert "metadata address" in text_of(refused.text)
    none = await add_webhook(client, "http://127.0.0.1:9/h", [])
    assert none.status_code == 422
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    async with browser(app) as other:
        await sign_in(other, editor.email)
        assert (await other.get(PAGE)).status_code == 403


async def test_a_webhook_konfig_disabled_is_announced_on_the_list(
    client: httpx.AsyncClient, owner: Account
) -> None:
    def gone(_n: int, _r: Received) -> tuple[int, dict[str, str], bytes]:
        return 410, {}, b"gone"

    await sign_in(client, owner.email)
    with receiving(gone) as receiver:
        await add_webhook(client, receiver.url, ["config.changed"])
        listed = await client.get(PAGE)
        detail = re.search(r'href="(/ui/admin/webhooks/[0-9a-f-]{36})"', listed.text)
        assert detail
        await post_form(client, detail.group(1), f"{detail.group(1)}/test", {})
        await receiver.wait_for(1)
        await settled(client, owner, detail.group(1).rsplit("/", 1)[1], 1)
    notice = text_of((await client.get(PAGE)).text)
    assert "Konfig disabled 1 webhook" in notice and "410 Gone" in notice
