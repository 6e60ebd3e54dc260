"""Done-when of single sign-on, in Chromium against a real `konfig serve` and a real OpenID
provider: a payments-devs member signs in for the first time, edits payments/staging, is
refused on orders/production; removed from the group at the provider, the next sign-in leaves
them a viewer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oidc import OidcProvider, person, start_provider
from tests.support.servers import ServerProcess
from tests.support.sso import sso_settings
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OWNER = "owner@acme.example.com"
PASSWORD = "SecurePassword123"
DEV = person("dev@acme.example.com", groups=["payments-devs"])


@pytest.fixture(scope="module")
def provider(server: ServerProcess) -> Iterator[OidcProvider]:
    started = start_provider([f"{server.url}/ui/sso/callback"], {"dev": dict(DEV)})
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def acme(server: ServerProcess, provider: OidcProvider) -> dict[str, str]:
    """The organisation, its namespaces (each with a pool size) and its provider, via the API."""
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "acme", "email": OWNER, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    headers = api_login(server, OWNER, PASSWORD)
    ids = {}
    for name in ("payments/staging", "orders/production"):
        made = httpx.post(f"{server.url}/api/v1/namespaces", headers=headers, json={"name": name})
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
        entry = {"key": "pool", "value": 5, "value_type": "number"}
        added = httpx.post(
            f"{server.url}/api/v1/namespaces/{ids[name]}/configs", headers=headers, json=entry
        )
        assert added.status_code == 201, added.text
    configured = httpx.put(f"{server.url}/api/v1/sso", headers=headers, json=sso_settings(provider))
    assert configured.status_code == 200, configured.text
    return ids


async def sso_sign_in(page: Any) -> None:
    from playwright.async_api import expect

    await page.goto("/ui/login?tenant=acme")
    await page.get_by_role("link", name="Sign in with Acme Login").click()
    # The provider's own sign-in form (oidc-provider's development interaction).
    await page.locator('input[name="login"]').fill("dev")
    await page.locator('input[name="password"]').fill("any password")
    await page.get_by_role("button", name="Sign-in").click()
    await page.wait_for_url(re.compile(r"/ui$"))
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def save_pool(page: Any, namespace_id: str, value: str) -> None:
    await page.goto(f"/ui/namespaces/{namespace_id}/entries/pool")
    await page.locator("#edit-value_number").fill(value)
    await page.get_by_role("button", name="Save changes").click()


async def read_only(page: Any, namespace_id: str, name: str) -> None:
    """The entry shown to someone who may not change it: its value, and no edit form."""
    from playwright.async_api import expect

    await page.goto(f"/ui/namespaces/{namespace_id}/entries/pool")
    await expect(page.locator("#entry-readonly")).to_contain_text(
        f"an editor of {name} can change it"
    )
    assert await page.locator("#edit-value_number").count() == 0


async def test_a_payments_dev_signs_in_edits_payments_and_is_refused_elsewhere(
    chromium: Any,
    server: ServerProcess,
    provider: OidcProvider,
    acme: dict[str, str],
    screenshots: Path,
) -> None:
    from playwright.async_api import expect

    page = await new_page(chromium, server)
    await page.goto("/ui/login?tenant=acme")
    await page.screenshot(path=screenshots / "login-sso-desktop.png")
    await sso_sign_in(page)

    await save_pool(page, acme["payments/staging"], "7")
    await expect(page.locator("#entry-pool")).to_contain_text("7")
    await read_only(page, acme["orders/production"], "orders/production")
    await page.screenshot(path=screenshots / "sso-refused-elsewhere.png", full_page=True)

    # Out of the group at the provider: the next sign-in leaves a viewer.
    provider.set_account("dev", person("dev@acme.example.com", groups=[]))
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    page = await new_page(chromium, server)  # another day, a fresh browser
    await sso_sign_in(page)
    await read_only(page, acme["payments/staging"], "payments/staging")
    headers = api_login(server, OWNER, PASSWORD)
    pool = httpx.get(
        f"{server.url}/api/v1/namespaces/{acme['payments/staging']}/configs/pool", headers=headers
    )
    assert pool.json()["value"] == 7
    assert page.csp_violations == []
