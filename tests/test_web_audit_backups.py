"""Web UI audit log (filters, pages) and backups (create, restore after the dry-run diff)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Account, add_user
from tests.support.namespaces import make_ns
from tests.support.web import browser, csrf_of, post_form, sign_in, text_of

AUDIT = "/ui/admin/audit"
BACKUPS = "/ui/admin/backups"


async def put(client: httpx.AsyncClient, who: Account, ns: str, key: str, value: Any) -> None:
    answer = await client.put(
        f"/api/v1/namespaces/{ns}/configs/{key}", headers=who.headers, json={"value": value}
    )
    assert answer.status_code in (200, 201), answer.text


def actions_of(page: str) -> list[str]:
    return re.findall(r'<tr data-action="([^"]+)">', page)


async def test_the_audit_log_filters_by_who_what_where_and_when(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    payments = (await make_ns(client, owner, "payments"))["id"]
    billing = (await make_ns(client, owner, "billing"))["id"]
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    await put(client, owner, payments, "a", "1")
    await put(client, editor, billing, "b", "2")
    await sign_in(client, owner.email)
    everything = await client.get(AUDIT)
    assert everything.status_code == 200
    assert {"config.create", "namespace.create", "user.create"} <= set(actions_of(everything.text))
    by_editor = await client.get(AUDIT, params={"actor": f"user:{editor.user_id}"})
    assert set(actions_of(by_editor.text)) == {"config.create", "auth.login"}
    assert "ed@acme.example.com" in text_of(by_editor.text)
    configs = await client.get(AUDIT, params={"action": "config."})
    assert actions_of(configs.text) == ["config.create", "config.create"]
    in_billing = await client.get(AUDIT, params={"action": "config.create", "namespace": "billing"})
    assert actions_of(in_billing.text) == ["config.create"]
    assert "Clear filters" in in_billing.text
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    future = await client.get(AUDIT, params={"since": later})
    assert actions_of(future.text) == []
    assert "No events match these filters" in future.text
    past = await client.get(AUDIT, params={"until": later, "action": "config."})
    assert len(actions_of(past.text)) == 2
    bad = await client.get(AUDIT, params={"since": "yesterday"})
    assert bad.status_code == 422
    assert re.search(r'id="since-error">enter a date and time', bad.text)


async def test_the_audit_log_is_paginated_and_keeps_its_filters(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "busy"))["id"]
    for number in range(55):
        await put(client, owner, ns, f"k{number}", "v")
    await sign_in(client, owner.email)
    first = await client.get(AUDIT, params={"action": "config.create"})
    assert len(actions_of(first.text)) == 50
    older = re.search(r'href="(/ui/admin/audit\?[^"]+)">Older events', first.text)
    assert older
    link = older.group(1).replace("&amp;", "&")
    assert "action=config.create" in link
    second = await client.get(link)
    assert actions_of(second.text) == ["config.create"] * 5


async def test_only_admins_read_the_audit_log_and_it_never_shows_values(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments"))["id"]
    created = await client.put(
        f"/api/v1/namespaces/{ns}/configs/api_key",
        headers=owner.headers,
        json={"value": "sk-live-secret-value", "is_secret": True},
    )
    assert created.status_code == 201
    await sign_in(client, owner.email)
    page = await client.get(AUDIT)
    assert "sk-live-secret-value" not in page.text
    assert "api_key" in page.text
    viewer = await add_user(client, owner, "view@acme.example.com", "viewer")
    async with browser(app) as ui:
        await sign_in(ui, viewer.email)
        refused = await ui.get(AUDIT)
        assert refused.status_code == 403
        assert "this needs the admin role" in refused.text


async def test_a_backup_is_restored_after_its_dry_run_diff_is_shown(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    await put(client, owner, ns, "currency", "EUR")
    await put(client, owner, ns, "api_key", "sk-old")
    await client.patch(
        f"/api/v1/namespaces/{ns}/configs/api_key", headers=owner.headers, json={"is_secret": True}
    )
    await sign_in(client, owner.email)
    made = await post_form(client, BACKUPS, BACKUPS, {})
    assert made.status_code == 303
    listed = await client.get(BACKUPS)
    assert "Backed up 1 namespaces and 2 entries" in listed.text
    backup_id = re.search(r'href="/ui/admin/backups/([^"/]+)/restore"', listed.text)
    assert backup_id
    await put(client, owner, ns, "currency", "USD")
    await put(client, owner, ns, "region", "eu")
    await client.patch(
        f"/api/v1/namespaces/{ns}/configs/api_key", headers=owner.headers, json={"value": "sk-new"}
    )
    confirm = await client.get(f"{BACKUPS}/{backup_id.group(1)}/restore")
    assert confirm.status_code == 200
    rows = {
        key: text_of(row).strip()
        for key, row in re.findall(
            r'<tr class="diff-\w+" data-key="([^"]+)" data-change="\w+">(.*?)</tr>',
            confirm.text,
            re.S,
        )
    }
    assert rows["currency"].startswith("~ changed") and "USD" in rows["currency"]
    assert rows["region"].startswith("\N{MINUS SIGN} removed")
    assert "********" in rows["api_key"]
    assert "sk-old" not in confirm.text and "sk-new" not in confirm.text
    current = await client.get(f"/api/v1/namespaces/{ns}/configs/currency", headers=owner.headers)
    assert current.json()["value"] == "USD"  # a dry run changed nothing
    done = await client.post(
        f"{BACKUPS}/{backup_id.group(1)}/restore", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code == 303
    after = await client.get(BACKUPS)
    assert f"Restored backup {backup_id.group(1)}: payments/production (revision" in after.text
    restored = await client.get(f"/api/v1/namespaces/{ns}/configs", headers=owner.headers)
    assert {e["key"]: e["value"] for e in restored.json()["items"]} == {
        "api_key": "********",
        "currency": "EUR",
    }
    same = await client.get(f"{BACKUPS}/{backup_id.group(1)}/restore")
    assert "Nothing would change" in same.text


async def test_the_dry_run_shows_a_template_the_restore_brings_back(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments"))["id"]
    template = {"keys": [{"key": "currency", "required": True}, {"key": "region"}]}
    declared = await client.put(
        f"/api/v1/namespaces/{ns}/template", headers=owner.headers, json=template
    )
    assert declared.status_code == 200, declared.text
    await sign_in(client, owner.email)
    assert (await post_form(client, BACKUPS, BACKUPS, {})).status_code == 303
    backup_id = re.search(
        r'href="/ui/admin/backups/([^"/]+)/restore"', (await client.get(BACKUPS)).text
    )
    assert backup_id
    dropped = await client.delete(f"/api/v1/namespaces/{ns}/template", headers=owner.headers)
    assert dropped.status_code == 200, dropped.text
    confirm = await client.get(f"{BACKUPS}/{backup_id.group(1)}/restore")
    assert "~ changed template: none → keys currency, region" in text_of(confirm.text)
    done = await client.post(
        f"{BACKUPS}/{backup_id.group(1)}/restore", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code == 303
    read = await client.get(f"/api/v1/namespaces/{ns}/template", headers=owner.headers)
    assert [k["key"] for k in read.json()["template"]["keys"]] == ["currency", "region"]


async def test_backups_empty_state_and_unknown_backup(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    empty = await client.get(BACKUPS)
    assert "No backups yet" in empty.text
    missing = await client.get(f"{BACKUPS}/20200101T000000.000Z/restore")
    assert missing.status_code == 404
    assert "no backup" in missing.text
