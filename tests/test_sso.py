"""Single sign-on through a real OpenID provider (oidc-provider on Node): settings, the
first sign-in and its grants, the mapping applied at every sign-in, password sign-in switched
off. Refusals: tests/test_sso_refusals.py; the browser: tests/test_sso_browser.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import PASSWORD, Account, add_user, assert_error, backstage, register
from tests.support.grants import audit_of, grant
from tests.support.oidc import CLIENT_SECRET, OidcProvider, person, start_provider
from tests.support.readpath import make_namespace, put_entry
from tests.support.sso import (
    CALLBACK,
    configure,
    query,
    signed_in,
    sso_settings,
    sso_sign_in,
    start,
)

ACCOUNTS = {
    "dev": person("dev@acme.example.com", groups=["payments-devs"]),
    "boss": person("boss@acme.example.com", groups=["platform-admins"]),
    "owner": person("owner@acme.example.com", groups=[]),
}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    started = start_provider([CALLBACK], {k: dict(v) for k, v in ACCOUNTS.items()})
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(autouse=True)
def fresh_accounts(provider: OidcProvider) -> None:
    for account_id, claims in ACCOUNTS.items():
        provider.set_account(account_id, claims)


async def test_owners_set_sso_and_the_secret_never_comes_back(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider, app: object
) -> None:
    assert_error(await client.get("/api/v1/sso", headers=owner.headers), 404, "NOT_FOUND")
    first = sso_settings(provider)
    del first["client_secret"]
    refused = await client.put("/api/v1/sso", headers=owner.headers, json=first)
    assert "client_secret" in assert_error(refused, 422, "VALIDATION_ERROR")["message"]

    answer = await configure(client, owner, provider)
    assert answer["client_secret_set"] is True and "client_secret" not in answer
    assert answer["login_url"] == "/ui/sso/login?tenant=acme"
    assert answer["redirect_uri"] == CALLBACK
    read = await client.get("/api/v1/sso", headers=owner.headers)
    assert read.json() == answer and CLIENT_SECRET not in read.text
    # Left out, the stored secret is kept (a sign-in still works below).
    kept = await client.put("/api/v1/sso", headers=owner.headers, json={**first, "strict": True})
    assert kept.status_code == 200 and kept.json()["strict"] is True
    async with backstage(app) as session:
        stored = (
            await session.execute(text("SELECT client_secret_ciphertext FROM sso_configs"))
        ).scalar_one()
    assert CLIENT_SECRET.encode() not in bytes(stored)
    events = await audit_of(client, owner, "sso.configure")
    assert len(events) == 2 and CLIENT_SECRET not in str(events)
    assert events[0]["summary"]["client_secret_changed"] is False
    assert (await sso_sign_in(client, "dev")).status_code == 303


async def test_only_owners_see_or_change_sso(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    assert_error(await client.get("/api/v1/sso", headers=admin.headers), 403, "FORBIDDEN")
    assert_error(
        await client.put("/api/v1/sso", headers=admin.headers, json=sso_settings(provider)),
        403,
        "FORBIDDEN",
    )


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"issuer": "http://login.example.com"}, "https"),
        ({"allowed_domains": ["not a domain"]}, "domain"),
        ({"allowed_domains": []}, "allowed_domains"),
        ({"default_grants": [grant("owner", "**")]}, "owner"),
        ({"strict": True, "role_mapping": []}, "strict"),
        ({"role_mapping": [{"value": "x", "grants": []}]}, "grants"),
        ({"client_ids": "x"}, "client_ids"),
    ],
)
async def test_bad_sso_settings_are_a_clear_422(
    client: httpx.AsyncClient,
    owner: Account,
    provider: OidcProvider,
    change: dict[str, object],
    word: str,
) -> None:
    answer = await client.put(
        "/api/v1/sso", headers=owner.headers, json={**sso_settings(provider), **change}
    )
    assert word in assert_error(answer, 422, "VALIDATION_ERROR")["message"]


async def test_the_start_sends_the_browser_with_pkce_state_and_nonce(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    await configure(client, owner, provider)
    url = await start(client)
    assert url.startswith(f"{provider.issuer}/auth?")
    asked = query(url)
    assert asked["client_id"] == "konfig" and asked["redirect_uri"] == CALLBACK
    assert asked["response_type"] == "code" and "openid" in asked["scope"].split()
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert client.cookies["konfig_sso_state"] == asked["state"]
    assert asked["state"] != query(await start(client))["state"]


async def test_a_first_sign_in_creates_the_user_and_maps_groups_at_every_sign_in(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    staging = await make_namespace(client, owner, "payments/staging")
    orders = await make_namespace(client, owner, "orders/production")
    await configure(client, owner, provider)

    landed = await sso_sign_in(client, "dev")
    assert landed.status_code == 303 and landed.headers["location"] == "/ui"
    dev = signed_in(client)
    me = (await client.get("/api/v1/users/me", headers=dev)).json()
    assert me["email"] == "dev@acme.example.com" and me["full_name"] == "Dev"
    assert me["grants"] == [grant("viewer", "**"), grant("editor", "payments/**")]
    assert (await put_entry(client, dev, staging, "pool", "5")).status_code == 201
    assert_error(await put_entry(client, dev, orders, "pool", "5"), 403, "FORBIDDEN")

    provider.set_account("dev", person("dev@acme.example.com", groups=[]))
    assert (await sso_sign_in(client, "dev")).status_code == 303
    dev = signed_in(client)
    me = (await client.get("/api/v1/users/me", headers=dev)).json()
    assert me["grants"] == [grant("viewer", "**")]
    assert_error(await put_entry(client, dev, staging, "pool", "6"), 403, "FORBIDDEN")

    [created] = await audit_of(client, owner, "user.create")
    assert created["actor"] == "sso:dev@acme.example.com" and created["summary"]["via"] == "sso"
    [changed] = await audit_of(client, owner, "user.grants")
    assert changed["summary"]["after"] == {"grants": [grant("viewer", "**")]}
    logins = [e for e in await audit_of(client, owner, "auth.login") if e["summary"]]
    assert [e["summary"] for e in logins] == [{"via": "sso"}, {"via": "sso"}]


async def test_owners_keep_their_grants_when_they_sign_in_through_the_provider(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    await configure(client, owner, provider)
    assert (await sso_sign_in(client, "owner")).status_code == 303
    me = (await client.get("/api/v1/users/me", headers=signed_in(client))).json()
    assert me["id"] == owner.user_id and me["grants"] == [grant("owner", "**")]


async def test_password_sign_in_can_be_switched_off_except_for_owners(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    await configure(client, owner, provider, password_login=False)
    refused = await client.post(
        "/api/v1/auth/login", json={"email": editor.email, "password": PASSWORD}
    )
    assert "/ui/sso/login?tenant=acme" in assert_error(refused, 401, "UNAUTHENTICATED")["message"]
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": editor.email, "password": "wrong-password"}
    )
    assert assert_error(wrong, 401, "UNAUTHENTICATED")["message"] == "Incorrect email or password"
    owner_login = await client.post(
        "/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}
    )
    assert owner_login.status_code == 200
    failed = await audit_of(client, owner, "auth.login_failed")
    assert {"reason": "password login is off"} in [e["summary"] for e in failed]


async def test_the_sign_in_page_offers_the_tenants_provider(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    plain = await client.get("/ui/login")
    assert "Sign in with" not in plain.text and 'id="sso-form"' in plain.text
    await configure(client, owner, provider)
    offered = await client.get("/ui/login", params={"tenant": "acme"})
    assert "Sign in with Acme Login" in offered.text
    assert 'href="/ui/sso/login?tenant=acme&amp;next=/ui"' in offered.text
    unknown = await client.get("/ui/login", params={"tenant": "nobody"})
    assert "Sign in with" not in unknown.text and "nobody has no single sign-on" in unknown.text


async def test_tenants_use_their_own_providers(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    second = start_provider([CALLBACK], {"dev": person("dev@globex.example.com")})
    try:
        globex = await register(client, "globex")
        await configure(client, owner, provider)
        await configure(client, globex, second, allowed_domains=["globex.example.com"])
        assert query(await start(client, "globex"))["client_id"] == "konfig"
        assert (await start(client, "globex")).startswith(second.issuer)
        assert (await sso_sign_in(client, "dev", tenant="globex")).status_code == 303
        me = (await client.get("/api/v1/users/me", headers=signed_in(client))).json()
        assert me["tenant_id"] == globex.tenant_id and me["email"] == "dev@globex.example.com"
    finally:
        second.stop()


async def test_rotated_provider_keys_are_fetched_again(
    client: httpx.AsyncClient, owner: Account
) -> None:
    rotating = start_provider([CALLBACK], {"dev": person("dev@acme.example.com")}, kid="old")
    try:
        await configure(client, owner, rotating)
        assert (await sso_sign_in(client, "dev")).status_code == 303
        rotating.stop()
        rotating = start_provider(
            [CALLBACK],
            {"dev": person("dev@acme.example.com")},
            kid="new",
            port=int(rotating.issuer.rpartition(":")[2]),
        )
        assert (await sso_sign_in(client, "dev")).status_code == 303
    finally:
        rotating.stop()


async def test_a_malformed_cli_hand_over_link_is_refused(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    await configure(client, owner, provider)
    assert (await sso_sign_in(client, "dev")).status_code == 303
    for params in ({"port": "80", "state": "s" * 20}, {"port": "4000", "state": "short"}):
        answer = await client.get("/ui/sso/cli", params=params)
        assert answer.status_code == 422 and "run konfig login --sso again" in answer.text


async def test_the_providers_groups_claim_syncs_konfig_groups_at_every_sign_in(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    staging = await make_namespace(client, owner, "payments/staging")
    made = await client.post(
        "/api/v1/groups",
        headers=owner.headers,
        json={"name": "payments-devs", "grants": [grant("editor", "payments/**")]},
    )
    assert made.status_code == 201
    await configure(client, owner, provider, role_mapping=[], group_claim="groups", strict=False)

    assert (await sso_sign_in(client, "dev")).status_code == 303
    me = (await client.get("/api/v1/users/me", headers=signed_in(client))).json()
    assert me["groups"] == ["payments-devs"] and me["grants"] == [grant("viewer", "**")]
    assert (await put_entry(client, signed_in(client), staging, "pool", "5")).status_code == 201
    [synced] = await audit_of(client, owner, "user.groups")
    assert synced["summary"]["via"] == "sso" and synced["actor"] == "sso:dev@acme.example.com"

    provider.set_account("dev", person("dev@acme.example.com", groups=["unknown-team"]))
    assert (await sso_sign_in(client, "dev")).status_code == 303
    me = (await client.get("/api/v1/users/me", headers=signed_in(client))).json()
    assert me["groups"] == [] and me["group_grants"] == []
    assert_error(await put_entry(client, signed_in(client), staging, "p", "6"), 403, "FORBIDDEN")
