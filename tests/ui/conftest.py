"""Browser tests: Debian's Chromium driven by Playwright against a real `konfig serve`.

Without /usr/bin/chromium (or the playwright package) they are skipped, except in CI, where
that is a failure (``tests.conftest.unavailable``): CI installs Chromium before the suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unavailable
from tests.support.servers import ServerProcess, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server (SQLite) for the module's browser tests."""
    running = start_server(tmp_path_factory.mktemp("ui-server"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def screenshots(repo_root: Path) -> Path:
    folder = repo_root / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def strict_csp(route: Any) -> None:
    """Serve pages with the strict policy the ops branch sets, so any inline code would fail."""
    if route.request.resource_type != "document":
        await route.continue_()
        return
    response = await route.fetch(max_redirects=0)  # let the browser follow redirects itself
    headers = {**response.headers, "content-security-policy": STRICT_CSP}
    await route.fulfill(response=response, headers=headers)


async def new_page(chromium: Any, server: ServerProcess, *, phone: bool = False) -> Any:
    """A page in a fresh context (its own cookies) under a strict CSP; violations are kept."""
    context = await chromium.new_context(
        base_url=server.url,
        viewport=PHONE if phone else DESKTOP,
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=2 if phone else 1,
    )
    context.set_default_timeout(30_000)  # a loaded CI machine: the suite runs beside it
    await context.route("**/*", strict_csp)
    page = await context.new_page()
    page.csp_violations = []
    page.on(
        "console",
        lambda message: (
            page.csp_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return page


def api_login(server: ServerProcess, email: str, password: str) -> dict[str, str]:
    answer = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}
