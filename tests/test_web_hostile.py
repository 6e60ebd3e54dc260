"""The web UI refuses hostile input with a page that says why, never a 500."""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import Account
from tests.support.web import post_form, sign_in, text_of


async def _entries_form(client: httpx.AsyncClient, owner: Account) -> str:
    created = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "app"})
    assert created.status_code == 201, created.text
    await sign_in(client, owner.email)
    return f"/ui/namespaces/{created.json()['id']}"


def field_error(page: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', page)
    assert match, f"no error next to {field}"
    return html.unescape(match.group(1))


async def test_nul_in_a_form_field_is_a_422_page(client: httpx.AsyncClient, owner: Account) -> None:
    page = await _entries_form(client, owner)
    fields = {"key": "k", "value_type": "string", "value_string": "v", "description": "a\x00b"}
    refused = await post_form(client, page, f"{page}/entries", fields)
    assert refused.status_code == 422, refused.text
    assert "description: must not contain a NUL character" in text_of(refused.text)
    searched = await client.get("/ui", params={"q": "a\x00"})
    assert searched.status_code == 422


async def test_a_nul_inside_a_value_is_kept(client: httpx.AsyncClient, owner: Account) -> None:
    page = await _entries_form(client, owner)
    fields = {"key": "k", "value_type": "string", "value_string": "a\x00b"}
    saved = await post_form(client, page, f"{page}/entries", fields)
    assert saved.status_code == 303, saved.text
    namespace_id = page.rsplit("/", 1)[1]
    read = await client.get(f"/api/v1/namespaces/{namespace_id}/configs/k", headers=owner.headers)
    assert read.json()["value"] == "a\x00b"


async def test_deep_or_unencodable_json_is_shown_next_to_the_field(
    client: httpx.AsyncClient, owner: Account
) -> None:
    page = await _entries_form(client, owner)
    for value_json, said in [
        ("[" * 100_000 + "]" * 100_000, "nests deeper than"),
        ('"\\ud800"', "lone surrogate (\\ud800)"),
    ]:
        fields = {"key": "k", "value_type": "json", "value_json": value_json}
        refused = await post_form(client, page, f"{page}/entries", fields)
        assert refused.status_code == 422, refused.text[:300]
        assert said in field_error(refused.text, "value_json")
