"""Driving the web UI through httpx: a browser-like client with cookies and form tokens."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import PASSWORD

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = _TOKEN.search(page)
    assert found, "the page has no form token"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces squeezed."""
    without_tags = re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page))
    return re.sub(r"\s+", " ", html.unescape(without_tags))


@asynccontextmanager
async def browser(app: Any, *, https: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (its own cookie jar), like a second browser."""
    transport = httpx.ASGITransport(app=app)
    base_url = "https://konfig.test" if https else "http://konfig.test"
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> None:
    form = await client.get("/ui/login")
    answer = await client.post(
        "/ui/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui"


async def post_form(
    client: httpx.AsyncClient, page_url: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Open ``page_url``, then submit ``data`` to ``action`` with that page's form token."""
    opened = await client.get(page_url)
    assert opened.status_code == 200, opened.text
    return await client.post(action, data={**data, "csrf_token": csrf_of(opened.text)})
