"""A flag's page in a real browser: its evaluation chart, the rollout slider moving the weights,
the targeting editor's live JSON check, and the kill switch; a screenshot of the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EMAIL = "flo@flags.example.com"
PASSWORD = "SecurePassword123"
ROLLOUT = {
    "state": "ENABLED",
    "variants": {"new": "v2", "old": "v1"},
    "defaultVariant": "old",
    "targeting": {"fractional": [["new", 10], ["old", 90]]},
}


def _scene(server: ServerProcess) -> tuple[dict[str, str], str]:
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "flagged", "email": EMAIL, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(server, EMAIL, PASSWORD)
    made = httpx.post(f"{server.url}/api/v1/namespaces", headers=owner, json={"name": "shop"})
    namespace = str(made.json()["id"])
    httpx.put(
        f"{server.url}/api/v1/namespaces/{namespace}/configs/pricing",
        headers=owner,
        json={"value": ROLLOUT, "value_type": "flag"},
    ).raise_for_status()
    scopes = [{"namespaces": "shop", "permissions": ["read"]}]
    token = httpx.post(
        f"{server.url}/api/v1/tokens", headers=owner, json={"name": "shop", "scopes": scopes}
    ).json()["token"]
    for user in range(40):
        httpx.post(
            f"{server.url}/ofrep/v1/evaluate/flags/pricing",
            headers={"Authorization": f"Bearer {token}"},
            json={"context": {"targetingKey": f"user-{user}"}},
        ).raise_for_status()
    return owner, namespace


async def test_rollout_slider_targeting_editor_and_kill_switch(
    chromium: Any, server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    owner, namespace = _scene(server)
    page = await new_page(chromium, server)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()

    await page.goto(f"/ui/namespaces/{namespace}/flags")
    await page.get_by_role("link", name="pricing").click()
    await expect(page.get_by_role("heading", name="Flag pricing")).to_be_visible()
    assert await page.locator("svg.chart rect").count() >= 1  # this hour's bar
    await page.screenshot(path=str(screenshots / "flag.png"), full_page=True)

    await page.locator("[data-rollout-slider]").fill("25")
    await expect(page.locator("#weight_new")).to_have_value("25")
    await expect(page.locator("#weight_old")).to_have_value("75")
    await page.get_by_role("button", name="Save rollout").click()
    await expect(page.get_by_text("Saved the rollout of pricing")).to_be_visible()
    stored = httpx.get(
        f"{server.url}/api/v1/namespaces/{namespace}/configs/pricing", headers=owner
    ).json()["value"]
    assert stored["targeting"] == {"fractional": [["new", 25], ["old", 75]]}

    editor = page.locator("#targeting")
    await editor.fill('{"if": [true, "new"')
    await editor.blur()
    await expect(page.locator("#targeting-syntax")).to_contain_text("Line 1")
    await editor.fill('{"if": [{"ends_with": [{"var": "email"}, "@acme.test"]}, "new", null]}')
    # The live check clears its message once the text parses: the button stops moving.
    await expect(page.locator("#targeting-syntax")).to_be_hidden()
    await page.get_by_role("button", name="Save targeting").click()
    await expect(page.get_by_text("Saved the targeting of pricing")).to_be_visible()

    await page.get_by_role("button", name="Turn off (kill switch)").click()
    await expect(page.get_by_text("off: serving its default").first).to_be_visible()
    assert page.csp_violations == []
