"""Security headers, the Content-Security-Policy the docs need, CORS, docs off in production."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend, assert_error, make_settings, unavailable, wipe
from tests.support.apps import client_of, konfig_serve, running

PRODUCTION = {
    "env": "production",
    "secret_key": "a-production-secret-key-of-at-least-32-characters",
    "argon2_time_cost": 2,  # production refuses less than OWASP's minimum
    "argon2_memory_kib": 19456,
    "encryption_keys": "k1:" + base64.b64encode(b"k" * 32).decode(),
}


@pytest.fixture
async def clean(backend: Backend) -> AsyncIterator[Backend]:
    yield backend
    await wipe(backend.url)


def policy(answer: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy, as directive -> sources."""
    directives = [part.split() for part in answer.headers["content-security-policy"].split(";")]
    return {words[0]: words[1:] for words in directives if words}


def assert_hardened(answer: httpx.Response) -> None:
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert policy(answer)["frame-ancestors"] == ["'none'"]


async def test_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient, settings: object
) -> None:
    answers = [
        await client.get("/health"),
        await client.get("/api/v1/auth/me"),  # 401
        await client.get("/api/v1/no-such-route"),  # 404
        await client.post(  # 413, refused by the body cap before any route
            "/api/v1/auth/register",
            content=b"x" * (settings.max_body_bytes + 1),  # type: ignore[attr-defined]
            headers={"Content-Type": "application/json"},
        ),
    ]
    assert [answer.status_code for answer in answers] == [200, 401, 404, 413]
    for answer in answers:
        assert_hardened(answer)
        csp = policy(answer)
        assert csp["default-src"] == ["'self'"]
        assert "'unsafe-inline'" not in answer.headers["content-security-policy"]
        assert "strict-transport-security" not in answer.headers  # development


async def test_docs_policy_allows_exactly_what_the_docs_pages_use(
    client: httpx.AsyncClient,
) -> None:
    for page in ("/docs", "/redoc"):
        answer = await client.get(page)
        assert answer.status_code == 200
        assert_hardened(answer)
        csp = policy(answer)
        html = answer.text
        # Inline bootstrap code needs 'unsafe-inline' for its kind, on these pages only.
        if re.search(r"<script>\s*\S", html):
            assert "'unsafe-inline'" in csp["script-src"]
        if "<style>" in html:
            assert "'unsafe-inline'" in csp["style-src"]
        # Everything else comes from this origin, which 'self' allows; the assets load.
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets
        for asset in assets:
            assert asset.startswith("/static-offline-docs/"), asset
            fetched = await client.get(asset)
            assert fetched.status_code == 200
            # nosniff makes browsers refuse scripts and styles served with another type.
            kind = fetched.headers["content-type"]
            if asset.endswith(".js"):
                assert "javascript" in kind
            elif asset.endswith(".css"):
                assert kind.startswith("text/css")
        assert "'self'" in csp["script-src"] and "'self'" in csp["style-src"]
        assert "blob:" in csp["worker-src"]  # ReDoc's search worker
        assert "'unsafe-eval'" not in answer.headers["content-security-policy"]
    oauth = await client.get("/docs/oauth2-redirect")
    assert "'unsafe-inline'" in policy(oauth)["script-src"]


async def test_production_hides_docs_and_sends_hsts(clean: Backend, tmp_path: Path) -> None:
    async with running(make_settings(clean.url, tmp_path, **PRODUCTION)) as app:
        async with client_of(app) as client:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert_error(await client.get(path), 404, "NOT_FOUND")
            health = await client.get("/health")
            assert health.headers["strict-transport-security"].startswith("max-age=")
    settings = make_settings(clean.url, tmp_path, docs_enabled=True, **PRODUCTION)
    async with running(settings) as app, client_of(app) as client:
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200


async def test_cors_answers_only_allowed_origins(clean: Backend, tmp_path: Path) -> None:
    allowed, other = "https://ui.example.com", "https://evil.example.net"
    settings = make_settings(clean.url, tmp_path, cors_origins=[allowed])
    async with running(settings) as app, client_of(app) as client:
        simple = await client.get("/health", headers={"Origin": allowed})
        assert simple.headers["access-control-allow-origin"] == allowed
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
        foreign = await client.get("/health", headers={"Origin": other})
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers

        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        ok = await client.options("/api/v1/users", headers={"Origin": allowed, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        refused = await client.options("/api/v1/users", headers={"Origin": other, **preflight})
        assert_error(refused, 400, "BAD_REQUEST")
        assert "access-control-allow-origin" not in refused.headers
        assert_hardened(refused)


async def test_no_cors_headers_without_an_allow_list(client: httpx.AsyncClient) -> None:
    answer = await client.get("/health", headers={"Origin": "https://ui.example.com"})
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.slow
def test_a_browser_renders_the_docs_under_the_policy(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        unavailable("chromium on PATH, to render the docs pages with")
    # What each page shows once its scripts have drawn the API from /openapi.json.
    drawn = {"docs": 'data-path="/api/v1/auth/login"', "redoc": "operation-type"}
    with konfig_serve(tmp_path) as (url, _):
        for page, marker in drawn.items():
            # The DOM is dumped after a budget of virtual time that the spec fetch may outlast.
            doms = (render(browser, f"{url}/{page}", tmp_path / f"{page}{n}") for n in range(3))
            assert any(marker in dom for dom in doms), f"/{page} did not render"


def render(browser: str, url: str, profile: Path) -> str:
    """The DOM a headless Chromium builds for ``url``, checking it met no policy refusal."""
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=8000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    violations = [line for line in run.stderr.splitlines() if "Content Security Policy" in line]
    # Only ReDoc's "powered by" logo, which it fetches from its CDN, may be refused.
    assert all("img-src" in line and "https://" in line for line in violations), violations
    return run.stdout
