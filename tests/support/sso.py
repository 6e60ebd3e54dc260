"""Single sign-on set up through the API and walked through as a person would."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import Account
from tests.support.grants import grant
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, OidcProvider, sign_in_at_provider

KONFIG = "http://konfig.test"  # the in-process client's base URL
CALLBACK = f"{KONFIG}/ui/sso/callback"


def sso_settings(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    """Everyone at acme.example.com may sign in as a viewer; payments-devs edit payments/**;
    platform-admins administer the tenant."""
    return {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "display_name": "Acme Login",
        "allowed_domains": ["acme.example.com"],
        "role_mapping": [
            {
                "claim": "groups",
                "value": "payments-devs",
                "grants": [grant("editor", "payments/**")],
            },
            {"claim": "groups", "value": "platform-admins", "grants": [grant("admin", "**")]},
        ],
        "default_grants": [grant("viewer", "**")],
        **overrides,
    }


async def configure(
    client: httpx.AsyncClient, owner: Account, provider: OidcProvider, **overrides: Any
) -> dict[str, Any]:
    answer = await client.put(
        "/api/v1/sso", headers=owner.headers, json=sso_settings(provider, **overrides)
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def start(client: httpx.AsyncClient, tenant: str = "acme") -> str:
    """Konfig's answer to "sign in with SSO": the provider's authorization URL."""
    answer = await client.get("/ui/sso/login", params={"tenant": tenant})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def back(client: httpx.AsyncClient, callback: str) -> httpx.Response:
    """The browser arriving back at Konfig's callback."""
    return await client.get(callback.removeprefix(KONFIG))


async def sso_sign_in(
    client: httpx.AsyncClient, login: str, tenant: str = "acme"
) -> httpx.Response:
    """Start, sign in at the provider as ``login``, come back: Konfig's answer."""
    callback = await sign_in_at_provider(await start(client, tenant), login, CALLBACK)
    return await back(client, callback)


def signed_in(client: httpx.AsyncClient) -> dict[str, str]:
    """The API headers of the login the browser's cookies hold."""
    return {"Authorization": f"Bearer {client.cookies['konfig_access']}"}
