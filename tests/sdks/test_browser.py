"""The JavaScript SDK in Chromium: a page from another origin reads and watches a namespace
(through Konfig's CORS allow-list: the event stream's `Authorization` needs a preflight)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unavailable
from tests.sdks.conftest import Site, close_site, open_site
from tests.sdks.drivers import build_javascript
from tests.support.apps import free_port
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE = """<!doctype html>
<title>konfig sdk</title>
<script type="module">
  import { Konfig } from "./dist/index.js";
  window.start = async (url, token, name) => {
    const konfig = new Konfig({ url, token });
    const config = await konfig.get(name);
    window.seen = [];
    window.watch = konfig.watch(name, (config) => window.seen.push(config.getNumber("port")));
    return { port: config.getNumber("port"), region: config.getString("region"), stale: config.stale };
  };
</script>
"""


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static server (another origin than Konfig's) for the page and the built package."""
    package = build_javascript()
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "dist").symlink_to(package / "dist")
    port = free_port()
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    origin = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{origin}/index.html", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield origin, tmp_path
    finally:
        static.terminate()
        static.wait(30)


@pytest.fixture
def cors_site(
    page_origin: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    opened = open_site(tmp_path_factory.mktemp("cors-site"), KONFIG_CORS_ORIGINS=page_origin[0])
    yield opened
    close_site(opened)


async def test_the_javascript_sdk_reads_and_watches_in_a_browser(
    page_origin: tuple[str, Path], cors_site: Site
) -> None:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package (pip install -e '.[test]')")

    origin, _ = page_origin
    name, namespace_id = cors_site.service("browser")
    _, token = cors_site.token("read")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{origin}/index.html")
            await page.wait_for_function("typeof window.start === 'function'")
            first: dict[str, Any] = await page.evaluate(
                "([url, token, name]) => window.start(url, token, name)",
                [cors_site.url, token, name],
            )
            assert first == {"port": 8080, "region": "eu", "stale": False}
            await page.wait_for_function("window.seen.length === 1")
            assert await page.evaluate("window.watch.mode") == "sse"
            cors_site.set("port", 9090, "number", at=namespace_id)
            await page.wait_for_function("window.seen.length === 2")
            assert await page.evaluate("window.seen") == [8080, 9090]
            await page.evaluate("window.watch.stop()")
            assert errors == []
        finally:
            await browser.close()
