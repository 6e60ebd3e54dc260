"""Owners set single sign-on on its UI page; the client secret never comes back to the page."""

from __future__ import annotations

import httpx

from tests.conftest import Account, add_user
from tests.support.grants import grant
from tests.support.web import post_form, sign_in, text_of

SECRET = "ui-client-s3cret"
FORM = {
    "issuer": "https://login.acme.example.com/",
    "client_id": "konfig",
    "client_secret": SECRET,
    "display_name": "Acme Login",
    "allowed_domains": "acme.example.com, acme.example.org",
    "default_grants": "viewer **",
    "role_mapping": "groups payments-devs editor payments/**\ngroups payments-devs viewer x/**\n"
    "groups admins admin **",
    "group_claim": "",
    "password_login": "on",
}


async def test_an_owner_sets_sso_on_its_page(client: httpx.AsyncClient, owner: Account) -> None:
    await sign_in(client, owner.email)
    empty = await client.get("/ui/admin/sso")
    assert empty.status_code == 200 and "/ui/sso/callback" in empty.text
    missing = await post_form(
        client, "/ui/admin/sso", "/ui/admin/sso", {**FORM, "client_secret": ""}
    )
    assert missing.status_code == 422 and 'id="client_secret-error"' in missing.text
    bad = await post_form(client, "/ui/admin/sso", "/ui/admin/sso", {**FORM, "issuer": "ftp://x"})
    assert bad.status_code == 422 and 'id="issuer-error"' in bad.text
    saved = await post_form(client, "/ui/admin/sso", "/ui/admin/sso", FORM)
    assert saved.status_code == 303, saved.text
    page = await client.get("/ui/admin/sso")
    assert "Saved the single sign-on settings." in text_of(page.text) and SECRET not in page.text
    assert "groups payments-devs editor payments/**" in page.text
    read = (await client.get("/api/v1/sso", headers=owner.headers)).json()
    assert read["issuer"] == "https://login.acme.example.com"
    assert read["allowed_domains"] == ["acme.example.com", "acme.example.org"]
    assert read["role_mapping"][0] == {
        "claim": "groups",
        "value": "payments-devs",
        "grants": [grant("editor", "payments/**"), grant("viewer", "x/**")],
    }
    assert read["strict"] is False and read["password_login"] is True
    kept = await post_form(
        client, "/ui/admin/sso", "/ui/admin/sso", {**FORM, "client_secret": "", "strict": "on"}
    )
    assert kept.status_code == 303
    assert (await client.get("/api/v1/sso", headers=owner.headers)).json()["strict"] is True


async def test_only_owners_open_the_sso_page(client: httpx.AsyncClient, owner: Account) -> None:
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    await sign_in(client, admin.email)
    assert (await client.get("/ui/admin/sso")).status_code == 403
    assert "Single sign-on" not in (await client.get("/ui")).text
