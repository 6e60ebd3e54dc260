"""A session that ends while editing, in a real browser: saving leads to the sign-in form and
back to the page being edited, with what was typed filled in again; a secret's value is never
kept in the browser's storage."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "SecurePassword123"
TYPED_SECRET = "sk-typed-ZEBRA-9931"


def _scene(server: ServerProcess) -> tuple[str, dict[str, str], str]:
    email = f"pat-{uuid.uuid4().hex[:8]}@platform.example.com"
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": f"platform-{uuid.uuid4().hex[:8]}", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(server, email, PASSWORD)
    made = httpx.post(
        f"{server.url}/api/v1/namespaces", headers=owner, json={"name": "payments/production"}
    )
    namespace = str(made.json()["id"])
    for key, fields in (
        ("db_host", {"value": "db.internal"}),
        ("api_key", {"value": "sk-stored", "is_secret": True}),
    ):
        httpx.put(
            f"{server.url}/api/v1/namespaces/{namespace}/configs/{key}", headers=owner, json=fields
        ).raise_for_status()
    return email, owner, namespace


async def _sign_in(page: Any, email: str) -> None:
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_an_ended_session_returns_to_the_edit_page_with_the_input_kept(
    chromium: Any, server: ServerProcess
) -> None:
    from playwright.async_api import expect

    email, owner, namespace = _scene(server)
    page = await new_page(chromium, server)
    await page.goto("/ui/login")
    await _sign_in(page, email)
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()

    edit = f"/ui/namespaces/{namespace}/entries/db_host"
    await page.goto(edit)
    await page.locator("#edit-value_string").fill("db2.internal")
    await page.locator("#edit-description").fill("Moved to the new cluster")
    await page.context.clear_cookies()  # the session ends while the form is open
    await page.get_by_role("button", name="Save changes").click()

    await expect(page.get_by_role("heading", name="Sign in to Konfig")).to_be_visible()
    await expect(page.get_by_text("After signing in you go back to the page")).to_be_visible()
    await _sign_in(page, email)
    await expect(page).to_have_url(f"{server.url}{edit}")
    await expect(page.locator("#edit-value_string")).to_have_value("db2.internal")
    await expect(page.locator("#edit-description")).to_have_value("Moved to the new cluster")
    await expect(page.get_by_text("what you typed is filled in again")).to_be_visible()
    # Kept only for that one return: the storage is empty again.
    assert await page.evaluate("window.sessionStorage.getItem('konfig.resume')") is None
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_text("db2.internal").first).to_be_visible()
    stored = httpx.get(
        f"{server.url}/api/v1/namespaces/{namespace}/configs/db_host", headers=owner
    ).json()
    assert (stored["value"], stored["description"]) == ("db2.internal", "Moved to the new cluster")

    # A secret's value never reaches the browser's storage, and is not filled in again.
    secret = f"/ui/namespaces/{namespace}/entries/api_key"
    await page.goto(secret)
    await page.locator("#edit-value_string").fill(TYPED_SECRET)
    await page.locator("#edit-description").fill("Rotated")
    await page.context.clear_cookies()
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_role("heading", name="Sign in to Konfig")).to_be_visible()
    kept = await page.evaluate("window.sessionStorage.getItem('konfig.resume')")
    assert kept is not None and "Rotated" in kept and TYPED_SECRET not in kept
    await _sign_in(page, email)
    await expect(page).to_have_url(f"{server.url}{secret}")
    await expect(page.locator("#edit-description")).to_have_value("Rotated")
    await expect(page.locator("#edit-value_string")).to_have_value("")
    assert page.csp_violations == []
