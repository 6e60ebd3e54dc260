"""`konfig login --sso`: the CLI waits on a loopback port while a browser signs in at the real
OpenID provider and hands the login over (a live `konfig serve`, oidc-provider on Node)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.support.cli import Cli
from tests.support.oidc import OidcProvider, person, sign_in_at_provider, start_provider
from tests.support.servers import ServerProcess, start_server
from tests.support.sso import sso_settings
from tests.support.web import csrf_of

pytestmark = pytest.mark.slow

_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def provider(server: ServerProcess) -> Iterator[OidcProvider]:
    started = start_provider(
        [f"{server.url}/ui/sso/callback"],
        {"dev": person("dev@cliacme.example.com", groups=["payments-devs"])},
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def tenant(server: ServerProcess, provider: OidcProvider) -> str:
    owner = "owner@cliacme.example.com"
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "cliacme", "email": owner, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    token = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": owner, "password": PASSWORD}
    ).json()["access_token"]
    settings = sso_settings(provider, allowed_domains=["cliacme.example.com"])
    configured = httpx.put(
        f"{server.url}/api/v1/sso", headers={"Authorization": f"Bearer {token}"}, json=settings
    )
    assert configured.status_code == 200, configured.text
    return "cliacme"


async def test_the_cli_signs_in_through_the_browser_and_the_provider(
    server: ServerProcess, provider: OidcProvider, tenant: str, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "home", server.url, "")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "konfig", "login", "--sso", "--tenant", tenant,
         "--url", server.url, "--no-browser"],
        env=cli.env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert waiting.stderr is not None
        line = waiting.stderr.readline()
        start = line.split("sign in with your browser: ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as browser:
            sent = await browser.get(start)
            assert sent.status_code == 303
            callback = await sign_in_at_provider(
                sent.headers["location"], "dev", f"{server.url}/ui/sso/callback"
            )
            landed = await browser.get(callback)
            assert landed.status_code == 303 and landed.headers["location"].startswith(
                "/ui/sso/cli?"
            )
            asked = await browser.get(landed.headers["location"])
            assert "dev@cliacme.example.com" in asked.text
            fields = dict(_HIDDEN.findall(asked.text))
            ready = await browser.post(
                "/ui/sso/cli", data={**fields, "csrf_token": csrf_of(asked.text)}
            )
            assert ready.status_code == 200
            assert (
                "form-action 'self' http://127.0.0.1:" in ready.headers["content-security-policy"]
            )
            action = re.search(r'action="(http://127\.0\.0\.1:\d+/)"', ready.text)
            assert action is not None
            handed = {k: html.unescape(v) for k, v in _HIDDEN.findall(ready.text)}
            async with httpx.AsyncClient() as loopback:
                forged = await loopback.post(action.group(1), data={**handed, "state": "x" * 24})
                assert forged.status_code == 400
                done = await loopback.post(urljoin(action.group(1), "/"), data=handed)
                assert done.status_code == 200 and "go back to your terminal" in done.text
        assert waiting.wait(timeout=30) == 0
    finally:
        waiting.kill()
        waiting.wait()
    who = cli.ok("whoami", "-o", "json")
    assert '"email": "dev@cliacme.example.com"' in who
