"""A namespace's history in a real browser: a compact timeline, a line per revision, paged,
with a revision's many keys folded until asked for."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "SecurePassword123"


def _scene(server: ServerProcess) -> tuple[str, str]:
    email = f"sam-{uuid.uuid4().hex[:8]}@platform.example.com"
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": f"history-{uuid.uuid4().hex[:8]}", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(server, email, PASSWORD)
    made = httpx.post(f"{server.url}/api/v1/namespaces", headers=owner, json={"name": "busy"})
    namespace = str(made.json()["id"])
    httpx.put(  # revision 1: ten keys at once
        f"{server.url}/api/v1/namespaces/{namespace}/document",
        headers=owner,
        json={"entries": [{"key": f"bulk{n}", "value": str(n)} for n in range(10)]},
    ).raise_for_status()
    for number in range(25):  # revisions 2 to 26: one key each, with a note
        httpx.put(
            f"{server.url}/api/v1/namespaces/{namespace}/configs/key{number}",
            headers={**owner, "X-Konfig-Message": f"change number {number}"},
            json={"value": str(number)},
        ).raise_for_status()
    return email, namespace


async def test_the_history_is_a_compact_paged_timeline(
    chromium: Any, server: ServerProcess
) -> None:
    from playwright.async_api import expect

    email, namespace = _scene(server)
    page = await new_page(chromium, server)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()
    await page.goto(f"/ui/namespaces/{namespace}/history")

    lines = page.locator("ol.timeline > li.revision")
    await expect(lines).to_have_count(20)
    await expect(page.locator("#revisions-span")).to_have_text("Revisions 26\N{EN DASH}7 of 26")
    newest = page.locator("#revision-26")
    await expect(newest).to_contain_text("change number 24")
    await expect(newest).to_contain_text("+ added key24")
    # Compact: a revision of one key is one line on a desktop screen, not a card.
    box = await newest.bounding_box()
    assert box is not None and box["height"] < 56, box

    await page.get_by_role("link", name="Older revisions").click()
    await expect(lines).to_have_count(6)
    bulk = page.locator("#revision-1")
    await expect(bulk.get_by_text("+ added bulk5")).to_be_visible()
    await expect(bulk.get_by_text("bulk9")).to_be_hidden()  # folded
    await bulk.get_by_text("4 more keys").click()
    await expect(bulk.get_by_text("bulk9")).to_be_visible()
    await page.get_by_role("link", name="Newest revisions").click()
    await expect(page.locator("#revisions-span")).to_have_text("Revisions 26\N{EN DASH}7 of 26")
    assert page.csp_violations == []
