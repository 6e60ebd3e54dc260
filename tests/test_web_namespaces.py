"""Web UI dashboard and namespace pages: the tree, typed editors, secrets, roles, isolation."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Account, add_user
from tests.support.namespaces import make_ns
from tests.support.web import browser, csrf_of, post_form, sign_in, text_of


def configs(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configs"


async def add_entry(client: httpx.AsyncClient, account: Account, ns: str, **entry: Any) -> None:
    created = await client.post(configs(ns), headers=account.headers, json=entry)
    assert created.status_code == 201, created.text


@pytest.fixture
async def production(client: httpx.AsyncClient, owner: Account) -> str:
    await make_ns(client, owner, "payments")
    return str((await make_ns(client, owner, "payments/production"))["id"])


async def test_dashboard_shows_namespaces_as_a_tree_with_revision_count_and_last_change(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await make_ns(client, owner, "billing/staging")
    await add_entry(client, owner, production, key="timeout", value=30, value_type="number")
    await sign_in(client, owner.email)
    page = (await client.get("/ui")).text
    # payments > production: production is nested inside payments' list item.
    nested = re.search(
        r'data-path="payments">.*?<ul>.*?data-path="payments/production">', page, re.S
    )
    assert nested
    # billing has no namespace of its own: it is a group, staging a namespace under it.
    assert re.search(r'<span class="tree-group">billing</span>', page)
    row = text_of(page.split('data-path="payments/production"')[1].split("</li>")[0])
    assert "rev 1" in row
    assert "1 entry" in row
    assert "changed just now by you" in row


async def test_dashboard_search_filters_by_name(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await make_ns(client, owner, "billing/staging")
    await sign_in(client, owner.email)
    found = await client.get("/ui", params={"q": "stag"})
    assert 'data-path="billing/staging"' in found.text
    assert 'data-path="payments/production"' not in found.text
    assert "1 of 3 namespaces match" in text_of(found.text)
    nothing = await client.get("/ui", params={"q": "zzz"})
    assert "Nothing matches" in nothing.text
    assert 'href="/ui"' in nothing.text


async def test_create_a_namespace_and_see_a_bad_name_next_to_its_field(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    bad = await post_form(client, "/ui", "/ui/namespaces", {"name": "Payments/Prod!"})
    assert bad.status_code == 422
    assert re.search(r'id="name-error">Use segments of lowercase letters', bad.text)
    assert 'value="Payments/Prod!"' in bad.text
    made = await post_form(client, "/ui", "/ui/namespaces", {"name": "payments/production"})
    assert made.status_code == 303
    page = await client.get(made.headers["location"])
    assert "Created payments/production" in page.text
    assert "No entries yet" in page.text


async def test_namespace_page_lists_entries_with_secrets_masked(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await add_entry(
        client, owner, production, key="db_password", value="hunter2-secret", is_secret=True
    )
    await add_entry(client, owner, production, key="debug", value=False, value_type="boolean")
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{production}")
    assert page.status_code == 200
    assert "hunter2-secret" not in page.text
    assert "********" in page.text
    assert "Reveal" in page.text
    fragment = await client.get(f"/ui/namespaces/{production}/entries")
    assert "hunter2-secret" not in fragment.text
    assert fragment.headers["X-Konfig-Revision"] == "2"
    revealed = await client.get(f"/ui/namespaces/{production}", params={"reveal": "db_password"})
    assert "hunter2-secret" in revealed.text
    editor = await client.get(f"/ui/namespaces/{production}/entries/db_password")
    assert "hunter2-secret" not in editor.text
    assert "Leave empty to keep the current secret value" in editor.text


async def test_a_viewer_sees_no_edit_controls_and_cannot_post(
    app: Any, client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await add_entry(client, owner, production, key="api_key", value="sk-live-123", is_secret=True)
    viewer = await add_user(client, owner, "vic@acme.example.com", "viewer")
    async with browser(app) as ui:
        await sign_in(ui, viewer.email)
        page = await ui.get(f"/ui/namespaces/{production}")
        assert page.status_code == 200
        assert "api_key" in page.text
        for control in ("Add an entry", ">Edit<", ">Delete<", ">Reveal<", "Namespace settings"):
            assert control not in page.text, control
        assert "Users" not in text_of(page.text.split("</nav>")[0])
        assert "sk-live-123" not in page.text
        reveal = await ui.get(f"/ui/namespaces/{production}", params={"reveal": "api_key"})
        assert reveal.status_code == 403
        assert "sk-live-123" not in reveal.text
        refused = await ui.post(
            f"/ui/namespaces/{production}/entries",
            data={
                "key": "x",
                "value_type": "string",
                "value_string": "y",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert refused.status_code == 403
        assert "needs the editor role" in refused.text
        dashboard = await ui.get("/ui")
        assert "Create a namespace" not in dashboard.text
        assert (await ui.get("/ui/admin/users")).status_code == 403
    # Each refusal left its denial in the audit log (on SQLite, the reveal's own writer turn
    # once held the denial's row back until it timed out: the row was lost).
    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "permission.denied"}
    )
    denials = [e for e in audit.json()["items"] if e["actor"] == f"user:{viewer.user_id}"]
    assert len(denials) == 3, denials


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/entries",
        "/entries/k",
        "/history",
        "/resolved",
        "/diff",
        "/rollback",
        "/entries/k/history",
    ],
)
async def test_another_tenants_namespace_is_not_found(
    app: Any,
    client: httpx.AsyncClient,
    owner: Account,
    other_tenant: Account,
    production: str,
    path: str,
) -> None:
    async with browser(app) as ui:
        await sign_in(ui, other_tenant.email)
        answer = await ui.get(f"/ui/namespaces/{production}{path}")
        assert answer.status_code == 404
        assert "Not found" in answer.text
        assert "payments/production" not in answer.text


async def test_another_tenants_namespace_cannot_be_written(
    app: Any, client: httpx.AsyncClient, owner: Account, other_tenant: Account, production: str
) -> None:
    async with browser(app) as ui:
        await sign_in(ui, other_tenant.email)
        token = csrf_of((await ui.get("/ui")).text)
        answer = await ui.post(
            f"/ui/namespaces/{production}/entries",
            data={"key": "x", "value_type": "string", "value_string": "y", "csrf_token": token},
        )
        assert answer.status_code == 404
    listed = await client.get(configs(production), headers=owner.headers)
    assert listed.json()["items"] == []


async def add_via_ui(client: httpx.AsyncClient, ns: str, **fields: str) -> httpx.Response:
    return await post_form(client, f"/ui/namespaces/{ns}", f"/ui/namespaces/{ns}/entries", fields)


def field_error(page: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', page)
    assert match, f"no error next to {field}"
    return html.unescape(match.group(1))


async def test_validation_errors_are_shown_next_to_the_field(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    above = await add_via_ui(
        client,
        production,
        key="max_connections",
        value_type="number",
        value_number="5000",
        max_value="1000",
    )
    assert above.status_code == 422
    assert "above max_value 1000" in field_error(above.text, "value_number")
    assert 'value="5000"' in above.text  # what was typed is kept
    not_a_number = await add_via_ui(
        client, production, key="n", value_type="number", value_number="lots"
    )
    assert field_error(not_a_number.text, "value_number") == "Enter a number, like 42 or 0.5."
    pattern = await add_via_ui(
        client,
        production,
        key="app_name",
        value_type="string",
        value_string="bad!",
        pattern="^[a-z]+$",
    )
    assert "does not match the pattern" in field_error(pattern.text, "value_string")
    option = await add_via_ui(
        client,
        production,
        key="log_level",
        value_type="select",
        options="DEBUG\nINFO",
        value_select='"TRACE"',
    )
    assert "not one of the options" in field_error(option.text, "value_select")
    broken = await add_via_ui(
        client, production, key="flags", value_type="json", value_json='{\n  "a": 1,\n  "b" 2\n}'
    )
    assert field_error(broken.text, "value_json").startswith("Line 3, column 7:")
    schema = await add_via_ui(
        client,
        production,
        key="flags",
        value_type="json",
        value_json='{"a": "x"}',
        json_schema='{"type": "object", "properties": {"a": {"type": "integer"}}}',
    )
    assert "At a: 'x' is not of type 'integer'" in field_error(schema.text, "value_json")
    bad_rule = await add_via_ui(
        client, production, key="s", value_type="string", value_string="x", min_length="-1"
    )
    assert field_error(bad_rule.text, "min_length") == "Min_length must be a whole number >= 0."
    bad_key = await add_via_ui(
        client, production, key="9lives", value_type="string", value_string="x"
    )
    assert "starting with a letter" in field_error(bad_key.text, "key")
    listed = await client.get(configs(production), headers=owner.headers)
    assert listed.json()["items"] == []


async def test_every_type_can_be_added_edited_and_deleted(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    for fields in (
        {"key": "app_name", "value_type": "string", "value_string": "Shop", "min_length": "3"},
        {"key": "pool", "value_type": "number", "value_number": "10", "integer": "yes"},
        {"key": "debug", "value_type": "boolean", "value_boolean": "true"},
        {"key": "level", "value_type": "select", "options": "DEBUG\nINFO\n5", "value_select": "5"},
        {"key": "flags", "value_type": "json", "value_json": '{"new_ui": true}'},
    ):
        added = await add_via_ui(client, production, **fields)
        assert added.status_code == 303, text_of(added.text)
    listed = {
        e["key"]: e
        for e in (await client.get(configs(production), headers=owner.headers)).json()["items"]
    }
    assert listed["app_name"]["value"] == "Shop"
    assert listed["app_name"]["validation_schema"] == {"min_length": 3}
    assert listed["pool"]["value"] == 10
    assert listed["pool"]["validation_schema"] == {"integer": True}
    assert listed["debug"]["value"] is True
    assert listed["level"]["value"] == 5
    assert listed["level"]["validation_schema"] == {"options": ["DEBUG", "INFO", 5]}
    assert listed["flags"]["value"] == {"new_ui": True}

    editor_url = f"/ui/namespaces/{production}/entries/level"
    editor = await client.get(editor_url)
    assert '<option value="5" selected>5</option>' in editor.text
    saved = await post_form(
        client,
        editor_url,
        editor_url,
        {
            "version": "1",
            "value_type": "select",
            "options": "DEBUG\nINFO\n5",
            "value_select": '"INFO"',
        },
    )
    assert saved.status_code == 303
    assert "Saved level" in (await client.get(f"/ui/namespaces/{production}")).text
    deleted = await post_form(
        client,
        f"/ui/namespaces/{production}",
        f"/ui/namespaces/{production}/entries/debug/delete",
        {"version": "1"},
    )
    assert deleted.status_code == 303
    after = {
        e["key"]: e
        for e in (await client.get(configs(production), headers=owner.headers)).json()["items"]
    }
    assert after["level"]["value"] == "INFO"
    assert "debug" not in after


async def test_a_live_update_does_not_take_the_next_pages_message(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    added = await add_via_ui(client, production, key="pool", value_type="number", value_number="10")
    assert added.status_code == 303
    # The page being left refreshes its live table while the browser follows the redirect.
    fragment = await client.get(
        f"/ui/namespaces/{production}/entries", headers={"X-Konfig-Fragment": "1"}
    )
    assert fragment.status_code == 200 and "pool" in fragment.text
    landed = await client.get(added.headers["location"])
    assert "Added pool (revision 1)." in text_of(landed.text)


async def test_editing_a_stale_version_is_refused_with_the_reason(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await add_entry(client, owner, production, key="timeout", value=30, value_type="number")
    await sign_in(client, owner.email)
    url = f"/ui/namespaces/{production}/entries/timeout"
    opened = await client.get(url)
    changed = await client.put(
        f"{configs(production)}/timeout",
        headers=owner.headers,
        json={"value": 60, "value_type": "number"},
    )
    assert changed.status_code == 200
    stale = await client.post(
        url,
        data={
            "version": "1",
            "value_type": "number",
            "value_number": "45",
            "csrf_token": csrf_of(opened.text),
        },
    )
    assert stale.status_code == 412
    assert "Someone else saved timeout while you were editing it" in stale.text
    now = await client.get(f"{configs(production)}/timeout", headers=owner.headers)
    assert now.json()["value"] == 60


async def test_an_empty_secret_field_keeps_the_secret(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await add_entry(client, owner, production, key="token", value="s3cret-value", is_secret=True)
    await sign_in(client, owner.email)
    url = f"/ui/namespaces/{production}/entries/token"
    saved = await post_form(
        client,
        url,
        url,
        {
            "version": "1",
            "value_type": "string",
            "value_string": "",
            "is_secret": "yes",
            "description": "Payment provider token",
        },
    )
    assert saved.status_code == 303
    read = await client.get(
        f"{configs(production)}/token", headers=owner.headers, params={"reveal": "true"}
    )
    assert read.json()["value"] == "s3cret-value"
    assert read.json()["description"] == "Payment provider token"


async def test_pages_have_no_inline_script_or_style(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await add_entry(client, owner, production, key="flags", value={"a": 1}, value_type="json")
    pages = ["/ui/login", "/ui/register"]
    for url in pages:
        await check_no_inline(await client.get(url))
    await sign_in(client, owner.email)
    for url in (
        "/ui",
        f"/ui/namespaces/{production}",
        f"/ui/namespaces/{production}/entries",
        f"/ui/namespaces/{production}/entries/flags",
        f"/ui/namespaces/{production}/history",
        "/ui/admin/users",
        "/ui/admin/tokens",
        f"/ui/namespaces/{production}/diff",
        f"/ui/namespaces/{production}/rollback?revision=0",
        f"/ui/namespaces/{production}/resolved",
        f"/ui/namespaces/{production}/entries/flags/history",
        "/ui/admin/audit",
        "/ui/admin/backups",
        "/ui/nowhere",
    ):
        await check_no_inline(await client.get(url))


async def check_no_inline(page: httpx.Response) -> None:
    html = page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.url
    assert "<style" not in html, page.url
    assert not re.search(r"\sstyle=", html), page.url
    assert not re.search(r"\son[a-z]+=", html), page.url
    assert "javascript:" not in html, page.url
