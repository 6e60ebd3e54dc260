"""Web UI sign-in, registration, sign-out, cookies, transparent refresh and CSRF refusal."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi.routing import APIRoute

from konfig.app import create_app
from konfig.web.pages import PAGES
from tests.conftest import PASSWORD, Account, Backend, add_user, make_settings, register, wipe
from tests.support.web import browser, csrf_of, post_form, sign_in, text_of


def cookie_headers(response: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def test_login_page_has_labelled_fields_and_a_sign_in_button(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/ui/login")).text
    for label, kind in (("Email", "email"), ("Password", "password")):
        match = re.search(rf'<label for="([^"]+)">{label}</label>', page)
        assert match, f"no label {label}"
        assert re.search(rf'<input id="{match.group(1)}" name="{kind}" type="{kind}"', page)
    assert re.search(r'<button type="submit"[^>]*>Sign in</button>', page)


async def test_sign_in_sets_httponly_samesite_cookies_and_opens_the_dashboard(
    client: httpx.AsyncClient, owner: Account
) -> None:
    form = await client.get("/ui/login")
    answer = await client.post(
        "/ui/login",
        data={"email": owner.email, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"
    cookies = cookie_headers(answer)
    for name in ("konfig_access", "konfig_refresh"):
        header = cookies[name].lower()
        assert "httponly" in header
        assert "samesite=lax" in header
        assert "path=/ui" in header
        assert "secure" not in header  # development serves plain http
    dashboard = await client.get("/ui")
    assert dashboard.status_code == 200
    assert owner.email in dashboard.text
    assert "Sign out" in dashboard.text


async def test_cookies_are_secure_in_production(backend: Backend, tmp_path: Path) -> None:
    settings = make_settings(
        backend.url,
        tmp_path,
        env="production",
        secret_key="a-production-secret-key-that-is-long-enough",
        encryption_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),
    )
    app = create_app(settings)
    async with LifespanManager(app):
        async with browser(app, https=True) as client:
            await register(client, "prod")
            form = await client.get("/ui/login")
            assert "secure" in cookie_headers(form)["konfig_anon"].lower()
            answer = await client.post(
                "/ui/login",
                data={
                    "email": "owner@prod.example.com",
                    "password": PASSWORD,
                    "csrf_token": csrf_of(form.text),
                },
            )
            assert answer.status_code == 303
            for name in ("konfig_access", "konfig_refresh"):
                assert "secure" in cookie_headers(answer)[name].lower()
    await wipe(backend.url)


async def test_wrong_password_says_so_and_sets_no_login(
    client: httpx.AsyncClient, owner: Account
) -> None:
    form = await client.get("/ui/login")
    answer = await client.post(
        "/ui/login",
        data={"email": owner.email, "password": "wrong-password", "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 401
    assert "Incorrect email or password" in answer.text
    assert "konfig_access" not in cookie_headers(answer)
    assert f'value="{owner.email}"' in answer.text  # the email is kept, the password is not
    log = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "auth.login_failed"}
    )
    assert [e["target"] for e in log.json()["items"]] == [owner.email]


async def test_a_page_without_login_sends_the_browser_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/ui")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=/ui"
    fragment = await client.get("/ui/namespaces/x/entries", headers={"X-Konfig-Fragment": "1"})
    assert fragment.status_code in (401, 404)


async def test_after_sign_in_the_browser_goes_back_to_the_page_it_asked_for_but_never_away(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for target, expected in (
        ("/ui/admin/users", "/ui/admin/users"),
        ("https://evil.example.com/", "/ui"),
        ("//evil.example.com/ui", "/ui"),
    ):
        form = await client.get("/ui/login", params={"next": target})
        answer = await client.post(
            "/ui/login",
            data={
                "email": owner.email,
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
        assert answer.headers["location"] == expected


async def test_register_creates_the_organisation_and_signs_its_owner_in(
    client: httpx.AsyncClient,
) -> None:
    form = await client.get("/ui/register")
    answer = await client.post(
        "/ui/register",
        data={
            "name": "initech",
            "email": "peter@initech.example.com",
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
        },
    )
    assert answer.status_code == 303
    dashboard = await client.get("/ui")
    text = text_of(dashboard.text)
    assert "Your organisation initech is ready" in text
    assert "No namespaces yet" in text
    assert "Create a namespace" in text


async def test_register_shows_problems_next_to_their_fields(
    client: httpx.AsyncClient, owner: Account
) -> None:
    form = await client.get("/ui/register")
    answer = await client.post(
        "/ui/register",
        data={
            "name": "Not Valid!",
            "email": "nope",
            "password": "short",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert answer.status_code == 422
    for field in ("name", "email", "password"):
        assert f'id="{field}-error"' in answer.text
    taken = await client.post(
        "/ui/register",
        data={
            "name": "acme",
            "email": "new@acme.example.com",
            "password": PASSWORD,
            "csrf_token": csrf_of(answer.text),
        },
    )
    assert taken.status_code == 409
    assert re.search(r'id="name-error">[^<]*already exists', taken.text)


async def test_sign_out_ends_the_login(client: httpx.AsyncClient, owner: Account) -> None:
    await sign_in(client, owner.email)
    kept = dict(client.cookies)
    answer = await post_form(client, "/ui", "/ui/logout", {})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    assert "You are signed out" in (await client.get("/ui/login")).text
    # The old cookies are dead too, not just forgotten by this browser.
    client.cookies.clear()
    for name, value in kept.items():
        client.cookies.set(name, value, path="/ui")
    again = await client.get("/ui")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/ui/login")


async def test_an_expired_access_token_is_refreshed_transparently_once_for_concurrent_pages(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    refresh = client.cookies.get("konfig_refresh", path="/ui")
    client.cookies.delete("konfig_access", path="/ui")  # as the browser does once it expires
    assert refresh
    pages = await asyncio.gather(*(client.get("/ui") for _ in range(3)))
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert all("konfig_access" in cookie_headers(p) for p in pages)
    # The login survived: reusing the same refresh token within moments is not taken as theft.
    assert (await client.get("/ui")).status_code == 200
    me = await client.get(
        "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {client.cookies.get('konfig_access', path='/ui')}"},
    )
    assert me.status_code == 200


async def test_forms_without_the_token_are_refused_with_a_clear_page(
    client: httpx.AsyncClient, owner: Account
) -> None:
    form = await client.get("/ui/login")
    assert form.status_code == 200
    refused = await client.post("/ui/login", data={"email": owner.email, "password": PASSWORD})
    assert refused.status_code == 403
    assert "This form could not be accepted" in refused.text
    assert "konfig_access" not in cookie_headers(refused)
    forged = await client.post(
        "/ui/login",
        data={"email": owner.email, "password": PASSWORD, "csrf_token": "forged"},
    )
    assert forged.status_code == 403


async def test_every_ui_post_checks_the_token(app: Any, owner: Account) -> None:
    posts = sorted(
        "/ui" + route.path
        for pages in PAGES
        for route in pages.router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    )
    assert len(posts) >= 10
    async with browser(app) as client:
        await sign_in(client, owner.email)
        dashboard = await client.get("/ui")
        for path in posts:
            filled = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
            filled = filled.replace("/entries/00000000-0000-0000-0000-000000000000", "/entries/k")
            refused = await client.post(filled, data={"name": "x"})
            assert refused.status_code == 403, path
            assert "This form could not be accepted" in refused.text, path
        assert csrf_of(dashboard.text)
        # A signed-in visitor's refused forms are audited as denials (anonymous ones are not).
        audit = await client.get(
            "/api/v1/audit", headers=owner.headers, params={"action": "permission.denied"}
        )
        refusals = audit.json()["items"]
        assert refusals and {e["actor"] for e in refusals} == {f"user:{owner.user_id}"}
        assert {e["summary"]["reason"] for e in refusals} == {"the form token was refused"}


async def test_a_token_is_tied_to_its_login(
    app: Any, owner: Account, client: httpx.AsyncClient
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    async with browser(app) as first, browser(app) as second:
        await sign_in(first, owner.email)
        await sign_in(second, editor.email)
        token_of_first = csrf_of((await first.get("/ui")).text)
        token_of_second = csrf_of((await second.get("/ui")).text)
        assert token_of_first != token_of_second
        refused = await second.post("/ui/logout", data={"csrf_token": token_of_first})
        assert refused.status_code == 403
        accepted = await second.post("/ui/logout", data={"csrf_token": token_of_second})
        assert accepted.status_code == 303


@pytest.mark.parametrize("path", ["/ui/login", "/ui/register"])
async def test_pre_login_forms_are_bound_to_their_own_cookie(
    client: httpx.AsyncClient, path: str
) -> None:
    first = await client.get(path)
    token = csrf_of(first.text)
    assert "konfig_anon" in cookie_headers(first)
    client.cookies.delete("konfig_anon", path="/ui")
    client.cookies.set("konfig_anon", "another-browser-entirely-1234", path="/ui")
    refused = await client.post(path, data={"csrf_token": token})
    assert refused.status_code == 403
