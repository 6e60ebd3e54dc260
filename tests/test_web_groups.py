"""The groups page (make, edit grants, delete) and a user's groups on the users page."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Account, add_user
from tests.support.grants import grant
from tests.support.web import post_form, sign_in, text_of


async def test_an_admin_makes_a_group_gives_it_members_and_deletes_it(
    client: httpx.AsyncClient, owner: Account
) -> None:
    dev = await add_user(client, owner, "dev@acme.example.com", "viewer")
    await sign_in(client, owner.email)
    empty = await client.get("/ui/admin/groups")
    assert empty.status_code == 200 and "No groups yet." in empty.text

    bad = await post_form(
        client, "/ui/admin/groups", "/ui/admin/groups", {"name": "Bad Name", "grants": ""}
    )
    assert bad.status_code == 422 and 'id="name-error"' in bad.text
    owner_grant = await post_form(
        client, "/ui/admin/groups", "/ui/admin/groups", {"name": "x", "grants": "owner **"}
    )
    assert owner_grant.status_code == 422 and "owner is granted to people" in text_of(
        owner_grant.text
    )
    made = await post_form(
        client,
        "/ui/admin/groups",
        "/ui/admin/groups",
        {"name": "payments-devs", "grants": "editor payments/**"},
    )
    assert made.status_code == 303
    again = await post_form(
        client, "/ui/admin/groups", "/ui/admin/groups", {"name": "payments-devs", "grants": ""}
    )
    assert again.status_code == 409

    joined = await post_form(
        client,
        "/ui/admin/users",
        f"/ui/admin/users/{dev.user_id}/groups",
        {"groups": "payments-devs"},
    )
    assert joined.status_code == 303
    user = (await client.get(f"/api/v1/users/{dev.user_id}", headers=owner.headers)).json()
    assert user["group_grants"] == [grant("editor", "payments/**")]
    unknown = await post_form(
        client, "/ui/admin/users", f"/ui/admin/users/{dev.user_id}/groups", {"groups": "nope"}
    )
    assert unknown.status_code == 422 and "no group named nope" in text_of(unknown.text)

    page = await client.get("/ui/admin/groups")
    gid = re.search(r'id="group-([0-9a-f-]{36})"', page.text)
    assert gid and "dev@acme.example.com" in page.text
    changed = await post_form(
        client,
        "/ui/admin/groups",
        f"/ui/admin/groups/{gid.group(1)}/grants",
        {"grants": "viewer payments/**"},
    )
    assert changed.status_code == 303
    wrong = await post_form(
        client, "/ui/admin/groups", f"/ui/admin/groups/{gid.group(1)}/grants", {"grants": "boss **"}
    )
    assert wrong.status_code == 422 and f'id="grants-{gid.group(1)}-error"' in wrong.text
    deleted = await post_form(
        client, "/ui/admin/groups", f"/ui/admin/groups/{gid.group(1)}/delete", {}
    )
    assert deleted.status_code == 303
    user = (await client.get(f"/api/v1/users/{dev.user_id}", headers=owner.headers)).json()
    assert user["groups"] == [] and user["group_grants"] == []
