"""A real OpenID provider for the single sign-on tests: panva's ``oidc-provider`` (npm,
pinned in tests/oidc/package-lock.json, installed by ``.ci/run``) run by Node, and a person
signing in at it with an HTTP client that keeps cookies like a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.conftest import unavailable
from tests.support.apps import free_port

HERE = Path(__file__).resolve().parent.parent / "oidc"
CLIENT_ID = "konfig"
CLIENT_SECRET = "konfig-client-secret-for-tests"
_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)


def person(email: str, *, groups: list[str] | None = None, verified: bool = True) -> dict[str, Any]:
    """An account's claims at the provider."""
    return {
        "email": email,
        "email_verified": verified,
        "name": email.partition("@")[0].title(),
        "groups": groups or [],
    }


@dataclass
class OidcProvider:
    issuer: str
    redirect_uris: list[str]
    proc: subprocess.Popen[bytes] | None = field(repr=False, default=None)

    def set_account(self, account_id: str, claims: dict[str, Any]) -> None:
        """Change what the provider says about an account (its groups, say) from now on."""
        answer = httpx.put(f"{self.issuer}/test/accounts/{account_id}", json=claims)
        assert answer.status_code == 204, answer.text

    def tamper(self, *, id_token: bool) -> None:
        answer = httpx.put(f"{self.issuer}/test/tamper", json={"id_token": id_token})
        assert answer.status_code == 204, answer.text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_provider(
    redirect_uris: list[str],
    accounts: dict[str, dict[str, Any]],
    *,
    kid: str = "key-1",
    port: int | None = None,
) -> OidcProvider:
    """Run the provider on a free port (or ``port``: a restart with new keys), answering
    discovery before this returns."""
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js (the test OpenID provider runs on it)")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        unavailable("the npm package oidc-provider: run `npm ci --prefix tests/oidc`")
    port = port or free_port()
    config = {
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
            }
        ],
        "accounts": accounts,
        "kid": kid,
    }
    env = {**os.environ, "OIDC_PORT": str(port), "OIDC_CONFIG": json.dumps(config)}
    proc = subprocess.Popen(
        [node, str(HERE / "provider.mjs")],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    provider = OidcProvider(f"http://127.0.0.1:{port}", redirect_uris, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the OpenID provider exited with {proc.returncode}")
        try:
            if httpx.get(f"{provider.issuer}/.well-known/openid-configuration").is_success:
                return provider
        except httpx.TransportError:
            time.sleep(0.1)
    provider.stop()
    raise AssertionError("the OpenID provider did not start within 30 s")


async def sign_in_at_provider(authorize_url: str, login: str, redirect_uri: str) -> str:
    """Follow the provider's sign-in as a browser would, as ``login``: the URL it sends the
    browser back to (the callback, with its code and state)."""
    async with httpx.AsyncClient(timeout=30) as browser:
        url = authorize_url
        answer = await browser.get(url)
        for _ in range(10):
            if answer.is_redirect:
                url = urljoin(url, answer.headers["location"])
                if url.startswith(redirect_uri):
                    return url
                answer = await browser.get(url)
                continue
            form = _FORM.search(answer.text)
            assert form is not None, f"no sign-in form at {url}: {answer.status_code}"
            url = urljoin(url, unescape(form.group(1)))
            answer = await browser.post(
                url, data={"prompt": "login", "login": login, "password": "any"}
            )
        raise AssertionError(f"the provider never sent the browser back (last at {url})")
