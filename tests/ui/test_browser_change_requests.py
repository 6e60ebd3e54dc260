"""Protected namespaces in a real browser: an admin protects production on the policies page,
an editor's new entry lands on a change request's page, which they submit; a second editor
finds it in their inbox, approves and merges it; the namespace then shows the value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OWNER = "olga@guarded.example.com"
PASSWORD = "SecurePassword123"
EDITOR = [{"role": "viewer", "namespaces": "**"}, {"role": "editor", "namespaces": "payments/**"}]


def _scene(server: ServerProcess) -> str:
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "guarded", "email": OWNER, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(server, OWNER, PASSWORD)
    made = httpx.post(
        f"{server.url}/api/v1/namespaces", headers=owner, json={"name": "payments/production"}
    )
    assert made.status_code == 201, made.text
    for name in ("alice", "bob"):
        added = httpx.post(
            f"{server.url}/api/v1/users",
            headers=owner,
            json={"email": f"{name}@guarded.example.com", "password": PASSWORD, "grants": EDITOR},
        )
        assert added.status_code == 201, added.text
    return str(made.json()["id"])


async def sign_in(page: Any, email: str) -> None:
    from playwright.async_api import expect

    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()


async def test_protect_propose_submit_review_approve_and_merge(
    chromium: Any, server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    namespace = _scene(server)
    admin = await new_page(chromium, server)
    await sign_in(admin, OWNER)
    await admin.get_by_role("link", name="Protection", exact=True).click()
    await admin.get_by_label("Namespaces", exact=True).fill("Not a pattern")
    await admin.get_by_role("button", name="Protect").click()
    await expect(admin.locator("#namespaces-error")).to_contain_text("not a namespace pattern")
    await admin.get_by_label("Namespaces", exact=True).fill("*/production")
    await admin.get_by_role("button", name="Protect").click()
    await expect(admin.get_by_text("Protected */production")).to_be_visible()
    await expect(admin.locator("table.policies")).to_contain_text("whoever may edit")

    alice = await new_page(chromium, server)
    await sign_in(alice, "alice@guarded.example.com")
    await alice.goto(f"/ui/namespaces/{namespace}")
    await expect(alice.locator("[data-protection]")).to_have_text("protected (hard)")
    await alice.get_by_label("Key").fill("limit")
    await alice.locator("#add-value_string").fill("10")
    await alice.get_by_label("Change note").fill("Raise the limit")
    await alice.get_by_role("button", name="Add entry").click()
    await expect(alice).to_have_url(re.compile(r"/ui/change-requests/[0-9a-f-]{36}(#add)?$"))
    await expect(alice.get_by_text("payments/production is protected")).to_be_visible()
    await expect(alice.locator("tr[data-key=limit]")).to_contain_text("10")
    await alice.get_by_role("button", name="Submit for review").click()
    await expect(alice.locator("[data-cr-status]")).to_have_text("open")
    assert await alice.get_by_role("button", name="Approve").count() == 0  # not her own

    bob = await new_page(chromium, server)
    await sign_in(bob, "bob@guarded.example.com")
    await bob.get_by_role("link", name="Change requests", exact=True).click()
    await expect(bob.get_by_role("heading", name="Waiting for my review")).to_be_visible()
    await bob.get_by_role("link", name="Raise the limit").click()
    await bob.get_by_label("Comment").fill("Checked with finance")
    await bob.get_by_role("button", name="Comment", exact=True).click()
    await expect(bob.locator("li[data-kind=comment]")).to_contain_text("Checked with finance")
    await bob.get_by_role("button", name="Approve").click()
    await expect(bob.locator("[data-cr-status]")).to_have_text("approved")
    await bob.screenshot(path=str(screenshots / "change-request.png"), full_page=True)
    await bob.get_by_role("button", name="Merge").click()
    await expect(bob.get_by_text("Merged into payments/production as revision 1")).to_be_visible()
    await expect(bob.locator("li[data-kind=merge]")).to_contain_text("bob@guarded.example.com")

    await alice.goto(f"/ui/namespaces/{namespace}")
    await expect(alice.locator("#entry-limit")).to_contain_text("10")
    await alice.goto("/ui/change-requests?view=mine")
    await expect(alice.locator("tr[data-status=merged]")).to_contain_text("Raise the limit")
    for page in (admin, alice, bob):
        assert page.csp_violations == []
