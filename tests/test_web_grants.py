"""The users page shows and edits grants (one 'role pattern' per line); audited like the API."""

from __future__ import annotations

import httpx

from tests.conftest import Account, add_user
from tests.support.grants import audit_of, grant
from tests.support.web import post_form, sign_in, text_of


async def test_an_admin_edits_a_users_grants_on_the_users_page(
    client: httpx.AsyncClient, owner: Account
) -> None:
    dev = await add_user(client, owner, "dev@acme.example.com", "viewer")
    await sign_in(client, owner.email)
    page = await client.get("/ui/admin/users")
    assert f'id="grants-{dev.user_id}"' in page.text and "viewer **" in page.text
    action = f"/ui/admin/users/{dev.user_id}/grants"

    saved = await post_form(
        client, "/ui/admin/users", action, {"grants": "viewer **\n\neditor payments/**\n"}
    )
    assert saved.status_code == 303
    listed = await client.get("/ui/admin/users")
    assert "Saved the grants of dev@acme.example.com" in text_of(listed.text)
    user = (await client.get(f"/api/v1/users/{dev.user_id}", headers=owner.headers)).json()
    assert user["grants"] == [grant("viewer", "**"), grant("editor", "payments/**")]
    assert len(await audit_of(client, owner, "user.grants")) == 1

    bad = await post_form(client, "/ui/admin/users", action, {"grants": "viewer **\nowner pay/**"})
    assert bad.status_code == 422
    assert f'id="grants-{dev.user_id}-error"' in bad.text
    assert "Line 2: owner is a role on the whole tenant" in text_of(bad.text)
    pattern = await post_form(client, "/ui/admin/users", action, {"grants": "editor Pay/**"})
    assert pattern.status_code == 422 and "Line 1:" in text_of(pattern.text)


async def test_an_admin_cannot_grant_above_their_role_on_the_page(
    client: httpx.AsyncClient, owner: Account
) -> None:
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    dev = await add_user(client, owner, "dev@acme.example.com", "viewer")
    await sign_in(client, admin.email)
    refused = await post_form(
        client, "/ui/admin/users", f"/ui/admin/users/{dev.user_id}/grants", {"grants": "owner **"}
    )
    assert refused.status_code == 403 and "above your own" in text_of(refused.text)
    assert [e["action"] for e in await audit_of(client, owner, "permission.denied")] == [
        "permission.denied"
    ]
