"""A namespace's Clients page in a real browser, against `konfig serve` on SQLite and on
PostgreSQL: after a change to payments/production read by 30 instances of which 3 stopped
polling, the page shows 27 on the new revision and the 3 stale ones by id; the traffic chart
has its bars; a key no read delivered for the unread period is marked unread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess, start_server
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EMAIL = "ops@payments.example.com"
PASSWORD = "SecurePassword123"
UNREAD_SECONDS = 1.0
ENV = {
    "KONFIG_ANALYTICS_FLUSH_SECONDS": "0.1",
    "KONFIG_ANALYTICS_STALE_SECONDS": "0.5",
    "KONFIG_ANALYTICS_UNREAD_DAYS": str(UNREAD_SECONDS / 86400),
}


@pytest.fixture(params=["sqlite", "postgres"])
def konfig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    env = dict(ENV)
    if request.param == "postgres":
        env["KONFIG_DATABASE_URL"] = request.getfixturevalue("database_url")
    running = start_server(tmp_path, **env)
    try:
        yield running
    finally:
        running.stop()


def _instances(server: ServerProcess, token: str, numbers: range, etags: dict[int, str]) -> None:
    with httpx.Client(base_url=server.url) as http:
        for number in numbers:
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Konfig-Instance": f"checkout-{number:02d}",
                "X-Konfig-SDK": "konfig-python/1.2.0",
            }
            if number in etags:
                headers["If-None-Match"] = etags[number]
            answer = http.get("/api/v1/config/payments/production", headers=headers)
            assert answer.status_code in (200, 304), answer.text
            etags[number] = answer.headers["etag"]


def _scene(server: ServerProcess) -> tuple[dict[str, str], str, str]:
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "payments", "email": EMAIL, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(server, EMAIL, PASSWORD)
    ids = {}
    for name in ("payments", "payments/production"):
        made = httpx.post(f"{server.url}/api/v1/namespaces", headers=owner, json={"name": name})
        ids[name] = str(made.json()["id"])
    for namespace, key, value in (
        ("payments", "legacy_endpoint", "http://old"),
        ("payments/production", "legacy_endpoint", "https://new"),
        ("payments/production", "db_host", "db-1"),
    ):
        httpx.put(
            f"{server.url}/api/v1/namespaces/{ids[namespace]}/configs/{key}",
            headers=owner,
            json={"value": value},
        ).raise_for_status()
    scopes = [{"namespaces": "payments/**", "permissions": ["read"]}]
    token = httpx.post(
        f"{server.url}/api/v1/tokens", headers=owner, json={"name": "checkout", "scopes": scopes}
    ).json()["token"]
    etags: dict[int, str] = {}
    _instances(server, token, range(30), etags)
    httpx.put(
        f"{server.url}/api/v1/namespaces/{ids['payments/production']}/configs/db_host",
        headers=owner,
        json={"value": "db-2"},
    ).raise_for_status()
    _instances(server, token, range(27), etags)  # three stopped polling
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(
            f"{server.url}/api/v1/namespaces/{ids['payments/production']}/clients", headers=owner
        ).json()
        if found["stale"] == 3:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the three instances never became stale")
    return owner, ids["payments"], ids["payments/production"]


async def test_the_clients_page_shows_27_current_3_stale_by_id_and_an_unread_key(
    chromium: Any, konfig: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    _, payments, production = _scene(konfig)
    page = await new_page(chromium, konfig)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()

    await page.goto(f"/ui/namespaces/{production}")
    await page.get_by_role("link", name="Clients").click()
    headline = page.locator("[data-headline]")
    await expect(headline).to_contain_text("27 of 30 instances on revision 3; 3 behind since")
    stale = page.locator("[data-stale] li")
    await expect(stale).to_have_count(3)
    ids = sorted(await stale.evaluate_all("items => items.map(i => i.dataset.staleInstance)"))
    assert ids == ["checkout-27", "checkout-28", "checkout-29"]
    await expect(page.locator("table.clients tbody tr")).to_have_count(30)
    await expect(page.locator("tr[data-instance='checkout-00']")).to_contain_text("current")
    await expect(page.locator("tr[data-instance='checkout-29']")).to_contain_text("stale")
    await expect(page.locator("tr[data-instance='checkout-29']")).to_contain_text("token checkout")
    assert await page.locator("svg.chart rect[data-kind='reads']").count() >= 1
    await expect(page.locator("[data-traffic-totals]")).to_contain_text("reads 57")
    await page.screenshot(path=str(screenshots / "clients.png"), full_page=True)

    # payments' legacy_endpoint is overridden by production's: no read ever delivers it.
    await asyncio.sleep(UNREAD_SECONDS)
    await page.goto(f"/ui/namespaces/{payments}/clients")
    await expect(page.locator("tr[data-key='legacy_endpoint'][data-unread]")).to_contain_text(
        "unread"
    )
    await expect(page.get_by_text("no read delivered for 1 second")).to_be_visible()
    await page.get_by_role("link", name="Unread keys of every namespace").click()
    await expect(page.get_by_role("heading", name="Unread keys")).to_be_visible()
    await expect(page.locator("tr[data-unread-key='payments:legacy_endpoint']")).to_contain_text(
        "never"
    )
    await page.goto(f"/ui/namespaces/{production}/clients?period=week")
    await expect(page.get_by_role("heading", name="Traffic, last week")).to_be_visible()

    # The token's use: the namespace it read, its 57 requests by 30 instances, charted.
    await page.goto("/ui/admin/tokens")
    await page.get_by_role("link", name="Usage of checkout").click()
    await expect(page.get_by_role("heading", name="Usage of checkout")).to_be_visible()
    row = page.locator("tr[data-namespace='payments/production']")
    await expect(row.locator("td[data-label='Requests']")).to_have_text("57")
    await expect(row.locator("td[data-label='Instances']")).to_have_text("30")
    assert await page.locator("svg.chart rect[data-kind='reads']").count() >= 1
    await page.screenshot(path=str(screenshots / "token-usage.png"), full_page=True)
    assert page.csp_violations == []
