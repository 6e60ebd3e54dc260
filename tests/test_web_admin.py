"""Web UI administration: adding users, changing roles, deactivating."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import PASSWORD, Account, add_user, login
from tests.support.web import browser, post_form, sign_in, text_of


async def test_an_admin_adds_a_user_changes_their_role_and_deactivates_them(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    page = await client.get("/ui/admin/users")
    assert page.status_code == 200
    assert owner.email in page.text
    bad = await post_form(
        client, "/ui/admin/users", "/ui/admin/users", {"email": "nope", "password": "short"}
    )
    assert bad.status_code == 422
    assert 'id="email-error"' in bad.text and 'id="password-error"' in bad.text
    added = await post_form(
        client,
        "/ui/admin/users",
        "/ui/admin/users",
        {"email": "dev@acme.example.com", "password": PASSWORD, "role": "viewer"},
    )
    assert added.status_code == 303
    listed = await client.get("/ui/admin/users")
    assert "Added dev@acme.example.com as viewer" in listed.text
    user_id = re.search(
        r'id="user-([^"]+)">\s*<th scope="row" data-label="User"><span class="email">dev@',
        listed.text,
    )
    assert user_id
    uid = user_id.group(1)
    promoted = await post_form(
        client, "/ui/admin/users", f"/ui/admin/users/{uid}/role", {"role": "editor"}
    )
    assert promoted.status_code == 303
    assert "dev@acme.example.com is now editor" in (await client.get("/ui/admin/users")).text
    await login(client, "dev@acme.example.com")
    async with browser(app) as dev:
        await sign_in(dev, "dev@acme.example.com")
        assert (await dev.get("/ui")).status_code == 200
        off = await post_form(
            client, "/ui/admin/users", f"/ui/admin/users/{uid}/active", {"active": "no"}
        )
        assert off.status_code == 303
        assert "deactivated" in text_of((await client.get("/ui/admin/users")).text)
        signed_out = await dev.get("/ui")  # their login ended at once
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/ui/login")


async def test_the_last_owner_cannot_be_demoted_and_the_page_says_why(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    refused = await post_form(
        client, "/ui/admin/users", f"/ui/admin/users/{owner.user_id}/role", {"role": "viewer"}
    )
    assert refused.status_code == 409
    assert "cannot demote the last owner" in refused.text


async def test_an_editor_cannot_open_the_admin_pages_but_has_their_own_tokens(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    async with browser(app) as ui:
        await sign_in(ui, editor.email)
        for path in ("users", "audit", "backups", "backups/20261123T041500.123Z/restore"):
            page = await ui.get(f"/ui/admin/{path}")
            assert page.status_code == 403
            assert "Ask an admin" in page.text
        refused = await post_form(ui, "/ui/admin/tokens", "/ui/admin/backups", {})
        assert refused.status_code == 403
        tokens = await ui.get("/ui/admin/tokens")
        assert tokens.status_code == 200  # as in the API: anyone holds tokens of their own
        assert "Your tokens" in tokens.text
        assert "Service accounts" not in tokens.text
