"""Single sign-on refusals, each through the real provider: a clear page, an audit event, and
no user created (a forged or replayed callback, another browser, a refused code, a wrong
nonce, a tampered ID token, an unverified email, a disallowed domain, an issuer mismatch, no
role in strict mode, an email of another organisation)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Account, backstage, register
from tests.support.grants import audit_of
from tests.support.oidc import OidcProvider, person, sign_in_at_provider, start_provider
from tests.support.sso import CALLBACK, back, configure, query, sso_sign_in, start

ACCOUNTS = {
    "dev": person("dev@acme.example.com", groups=["payments-devs"]),
    "plain": person("plain@acme.example.com"),
    "unverified": person("new@acme.example.com", verified=False),
    "outsider": person("eve@evil.example.org"),
    "globex": person("owner@globex.example.com"),
}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    started = start_provider([CALLBACK], ACCOUNTS)
    try:
        yield started
    finally:
        started.stop()


async def _users(client: httpx.AsyncClient, owner: Account) -> list[str]:
    listed = await client.get("/api/v1/users", headers=owner.headers)
    return [u["email"] for u in listed.json()["items"]]


async def _refused(
    client: httpx.AsyncClient, owner: Account, answer: httpx.Response, reason: str, words: str
) -> None:
    """A page that says why, one audit event with the reason, and no new user."""
    assert answer.status_code == 401, answer.text
    assert "Sign-in refused" in answer.text and words in answer.text
    assert "konfig_access" not in answer.headers.get("set-cookie", "")
    failed = await audit_of(client, owner, "sso.login_failed")
    assert [e["summary"]["reason"] for e in failed] == [reason]
    assert await _users(client, owner) == [owner.email]


@pytest.fixture
async def acme(client: httpx.AsyncClient, owner: Account, provider: OidcProvider) -> Account:
    await configure(client, owner, provider)
    return owner


def _with(url: str, **params: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**query(url), **params})))


async def test_a_replayed_callback_is_refused(client: httpx.AsyncClient, acme: Account) -> None:
    callback = await sign_in_at_provider(await start(client), "plain", CALLBACK)
    assert (await back(client, callback)).status_code == 303
    client.cookies.set("konfig_sso_state", query(callback)["state"], path="/ui/sso")
    replay = await back(client, callback)
    assert replay.status_code == 401 and "used already" in replay.text
    failed = await audit_of(client, acme, "sso.login_failed")
    assert [e["summary"]["reason"] for e in failed] == ["replayed"]


async def test_a_forged_state_is_refused(
    client: httpx.AsyncClient, acme: Account, app: object
) -> None:
    answer = await client.get("/ui/sso/callback", params={"state": "forged", "code": "x"})
    assert answer.status_code == 401 and "unknown to Konfig" in answer.text
    async with backstage(app) as session:
        reasons = (
            await session.execute(
                text("SELECT summary FROM audit_events WHERE action = 'sso.login_failed'")
            )
        ).scalars()
        assert ["unknown_state" in str(r) for r in reasons] == [True]
    assert await _users(client, acme) == [acme.email]


async def test_a_callback_in_another_browser_is_refused(
    client: httpx.AsyncClient, acme: Account
) -> None:
    callback = await sign_in_at_provider(await start(client), "plain", CALLBACK)
    client.cookies.clear()
    answer = await back(client, callback)
    await _refused(client, acme, answer, "browser_mismatch", "another browser")


async def test_a_code_the_provider_refuses_is_refused(
    client: httpx.AsyncClient, acme: Account
) -> None:
    """Sign-in A's code brought back under sign-in B's state: the provider refuses it (its
    PKCE challenge is A's), as it refuses an expired or spent code."""
    first = await sign_in_at_provider(await start(client), "plain", CALLBACK)
    second = query(await start(client))["state"]
    answer = await back(client, _with(first, state=second))
    await _refused(client, acme, answer, "code_refused", "refused the sign-in code")


async def test_an_id_token_for_another_nonce_is_refused(
    client: httpx.AsyncClient, acme: Account
) -> None:
    """A code obtained with sign-in A's nonce, injected into sign-in B (its state and PKCE
    challenge): the exchange succeeds, the nonce does not match."""
    first = await start(client)
    second = query(await start(client))
    swapped = _with(first, state=second["state"], code_challenge=second["code_challenge"])
    callback = await sign_in_at_provider(swapped, "plain", CALLBACK)
    await _refused(client, acme, await back(client, callback), "nonce_mismatch", "nonce")


async def test_a_tampered_id_token_is_refused(
    client: httpx.AsyncClient, acme: Account, provider: OidcProvider
) -> None:
    provider.tamper(id_token=True)
    try:
        answer = await sso_sign_in(client, "plain")
    finally:
        provider.tamper(id_token=False)
    await _refused(client, acme, answer, "bad_signature", "signature")


@pytest.mark.parametrize(
    ("login", "reason", "words"),
    [
        ("unverified", "email_unverified", "has not verified new@acme.example.com"),
        ("outsider", "domain_not_allowed", "eve@evil.example.org is not in a domain"),
    ],
)
async def test_emails_must_be_verified_and_in_an_allowed_domain(
    client: httpx.AsyncClient, acme: Account, login: str, reason: str, words: str
) -> None:
    await _refused(client, acme, await sso_sign_in(client, login), reason, words)


async def test_strict_mode_refuses_a_sign_in_that_maps_to_no_role(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    await configure(client, owner, provider, strict=True)
    answer = await sso_sign_in(client, "plain")
    await _refused(client, owner, answer, "no_role", "give you no role")
    assert (await sso_sign_in(client, "dev")).status_code == 303


async def test_an_email_of_another_organisation_is_refused(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    await register(client, "globex")
    await configure(client, owner, provider, allowed_domains=["globex.example.com"])
    answer = await sso_sign_in(client, "globex")
    await _refused(client, owner, answer, "email_taken", "belongs to another organisation")


async def test_the_provider_saying_no_is_refused(client: httpx.AsyncClient, acme: Account) -> None:
    state = query(await start(client))["state"]
    answer = await client.get("/ui/sso/callback", params={"state": state, "error": "access_denied"})
    await _refused(client, acme, answer, "provider_error", "access_denied")


async def test_an_issuer_that_names_itself_otherwise_is_refused(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider
) -> None:
    elsewhere = provider.issuer.replace("127.0.0.1", "localhost")
    await configure(client, owner, provider, issuer=elsewhere)
    answer = await client.get("/ui/sso/login", params={"tenant": "acme"})
    assert answer.status_code == 502 and "check the issuer URL" in answer.text
    failed = await audit_of(client, owner, "sso.login_failed")
    assert [e["summary"]["reason"] for e in failed] == ["issuer_mismatch"]


async def test_unknown_tenants_and_tenants_without_sso_get_a_page(
    client: httpx.AsyncClient, owner: Account
) -> None:
    unknown = await client.get("/ui/sso/login", params={"tenant": "nobody"})
    assert unknown.status_code == 404 and "no organisation named" in unknown.text
    unset = await client.get("/ui/sso/login", params={"tenant": "acme"})
    assert unset.status_code == 404 and "has not set up single sign-on" in unset.text
