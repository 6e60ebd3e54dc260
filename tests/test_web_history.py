"""Web UI history: revisions, entry versions, diffs, rollbacks with their diff first, and the
resolved view; secrets masked, roles and tenants respected."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import Account, add_user
from tests.support.namespaces import make_ns
from tests.support.web import browser, csrf_of, post_form, sign_in, text_of

SECRET = "sk-live-very-secret"
REMOVED = "\N{MINUS SIGN} removed"  # the marker the pages use


def configs(ns: str, key: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configs" + (f"/{key}" if key else "")


async def put(client: httpx.AsyncClient, who: Account, ns: str, key: str, **entry: Any) -> None:
    answer = await client.put(configs(ns, key), headers=who.headers, json=entry)
    assert answer.status_code in (200, 201), answer.text


async def delete(client: httpx.AsyncClient, who: Account, ns: str, key: str) -> None:
    answer = await client.delete(configs(ns, key), headers=who.headers)
    assert answer.status_code == 204, answer.text


async def value_of(client: httpx.AsyncClient, who: Account, ns: str, key: str) -> Any:
    answer = await client.get(configs(ns, key), headers=who.headers, params={"reveal": "true"})
    return answer.json()["value"] if answer.status_code == 200 else None


@pytest.fixture
async def production(client: httpx.AsyncClient, owner: Account) -> str:
    """payments/production at revision 4: timeout 30 → 45, api_key (secret), debug deleted."""
    ns = str((await make_ns(client, owner, "payments/production"))["id"])
    await put(client, owner, ns, "timeout", value=30, value_type="number")  # 1
    await put(client, owner, ns, "api_key", value=SECRET, is_secret=True)  # 2
    await put(client, owner, ns, "debug", value=True, value_type="boolean")  # 3
    changed = await client.patch(
        configs(ns, "timeout"),
        headers={**owner.headers, "X-Konfig-Message": "slower upstream"},
        json={"value": 45},
    )
    assert changed.status_code == 200, changed.text  # 4
    await delete(client, owner, ns, "debug")  # 5
    return ns


def rows_of(page: str) -> dict[str, str]:
    """Each diff row's key → its visible text."""
    return {
        key: text_of(row).strip()
        for key, row in re.findall(
            r'<tr class="diff-\w+" data-key="([^"]+)" data-change="\w+">(.*?)</tr>', page, re.S
        )
    }


async def test_the_history_lists_revisions_newest_first_with_who_when_why_and_keys(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{production}/history")
    assert page.status_code == 200
    shown = [int(n) for n in re.findall(r'<li class="revision" id="revision-(\d+)"', page.text)]
    assert shown == [5, 4, 3, 2, 1]
    fourth = text_of(page.text.split('id="revision-4"')[1].split('id="revision-3"')[0])
    assert "by you" in fourth
    assert "just now" in fourth
    assert "“slower upstream”" in fourth
    assert "~ changed timeout" in fourth
    fifth = text_of(page.text.split('id="revision-5"')[1].split('id="revision-4"')[0])
    assert f"{REMOVED} debug" in fifth
    assert "+ added" in text_of(page.text.split('id="revision-1"')[1])
    assert f"/ui/namespaces/{production}/diff?from=3&amp;to=4" in page.text
    assert f"/ui/namespaces/{production}/rollback?revision=4" in page.text
    assert SECRET not in page.text


async def test_the_history_is_a_paged_compact_timeline(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = str((await make_ns(client, owner, "busy"))["id"])
    many = await client.put(  # revision 1 touches ten keys: six shown, four folded
        f"/api/v1/namespaces/{ns}/document",
        headers=owner.headers,
        json={"entries": [{"key": f"bulk{n}", "value": str(n)} for n in range(10)]},
    )
    assert many.status_code == 200, many.text
    for number in range(42):
        await put(client, owner, ns, f"key{number}", value=str(number))
    await sign_in(client, owner.email)

    def numbers(page: httpx.Response) -> list[int]:
        return [int(n) for n in re.findall(r'id="revision-(\d+)"', page.text)]

    def link(page: httpx.Response, rel: str) -> str:
        found = re.search(
            rf'href="(/ui/namespaces/[^"]+/history\?cursor=[^"]+)" rel="{rel}"', page.text
        )
        assert found, rel
        return found.group(1).replace("&amp;", "&")

    first = await client.get(f"/ui/namespaces/{ns}/history")
    assert numbers(first) == list(range(43, 23, -1))
    assert "Revisions 43\N{EN DASH}24 of 43" in text_of(first.text)
    assert 'rel="prev"' not in first.text and "Newest revisions" not in first.text

    second = await client.get(link(first, "next"))
    assert numbers(second) == list(range(23, 3, -1))
    assert "Newest revisions" in second.text and 'rel="prev"' not in second.text
    third = await client.get(link(second, "next"))
    assert numbers(third) == [3, 2, 1]
    bulk = text_of(third.text.split('id="revision-1"')[1])
    assert "+ added bulk0" in bulk and "+ added bulk5" in bulk
    assert "4 more keys" in bulk and "bulk9" in bulk  # folded, still there to unfold
    assert re.search(r'<details class="more-changes">\s*<summary>4 more keys</summary>', third.text)
    assert 'rel="next"' not in third.text
    back = await client.get(link(third, "prev"))  # newer: the page before, not the first
    assert numbers(back) == list(range(23, 3, -1))

    # Filtered, the pages go on with the filters; there is no count to show.
    filtered = await client.get(f"/ui/namespaces/{ns}/history", params={"key": "key7"})
    assert numbers(filtered) == [9]
    assert "1 matching revision on this page" in text_of(filtered.text)


async def test_a_new_namespace_says_how_its_history_starts(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/staging"))["id"]
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{ns}/history")
    assert page.status_code == 200
    assert "No changes yet" in page.text
    assert "Add the first entry" in page.text


async def test_diff_between_any_two_revisions_with_markers_and_secrets_masked(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{production}/diff", params={"from": 1, "to": 5})
    assert page.status_code == 200
    rows = rows_of(page.text)
    assert set(rows) == {"api_key", "timeout"}  # debug came and went in between
    assert rows["api_key"].startswith("+ added")
    assert "********" in rows["api_key"]
    assert rows["timeout"].startswith("~ changed")
    assert "30" in rows["timeout"] and "45" in rows["timeout"]
    assert 'class="diff-added"' in page.text and 'class="diff-changed"' in page.text
    assert SECRET not in page.text
    assert "1 added, 0 removed, 1 changed" in text_of(page.text)
    backwards = await client.get(f"/ui/namespaces/{production}/diff?from=3&to=5")
    assert rows_of(backwards.text)["debug"].startswith(REMOVED)
    assert 'class="diff-removed"' in backwards.text
    default = await client.get(f"/ui/namespaces/{production}/diff")
    assert "Revision 4 → revision 5" in text_of(default.text)


async def test_a_diff_with_an_impossible_revision_says_which_field_to_fix(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{production}/diff?from=abc&to=99")
    assert page.status_code == 422
    assert re.search(r'id="from-error">enter a revision number between 0 and 5', page.text)
    assert re.search(r'id="to-error">the latest revision is 5', page.text)
    assert 'value="abc"' in page.text


async def test_rollback_shows_the_diff_first_then_a_confirmed_post_does_it(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    confirm = await client.get(f"/ui/namespaces/{production}/rollback?revision=3")
    assert confirm.status_code == 200
    rows = rows_of(confirm.text)
    # current (5) → as at 3: timeout back to 30, debug back.
    assert rows["timeout"].startswith("~ changed")
    assert rows["debug"].startswith("+ added")
    assert "api_key" not in rows
    assert "Now (revision 5)" in confirm.text
    assert await value_of(client, owner, production, "timeout") == 45  # nothing changed yet
    done = await client.post(
        f"/ui/namespaces/{production}/rollback",
        data={
            "revision": "3",
            "expected": "5",
            "message": "undo the timeout change",
            "csrf_token": csrf_of(confirm.text),
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/namespaces/{production}/history"
    history = await client.get(done.headers["location"])
    assert "Rolled back to revision 3: the namespace is now at revision 6." in history.text
    assert "“undo the timeout change”" in history.text
    assert await value_of(client, owner, production, "timeout") == 30
    assert await value_of(client, owner, production, "debug") is True
    beyond = await client.get(f"/ui/namespaces/{production}/rollback?revision=7")
    assert beyond.status_code == 404
    assert "the latest revision is 6" in beyond.text
    same = await client.get(f"/ui/namespaces/{production}/rollback?revision=3")
    assert "Nothing to roll back" in same.text


async def test_a_rollback_confirmed_after_someone_else_changed_the_namespace_is_refused(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    confirm = await client.get(f"/ui/namespaces/{production}/rollback?revision=1")
    await put(client, owner, production, "timeout", value=60, value_type="number")  # now 6
    refused = await client.post(
        f"/ui/namespaces/{production}/rollback",
        data={"revision": "1", "expected": "5", "csrf_token": csrf_of(confirm.text)},
    )
    assert refused.status_code == 412
    assert "Someone changed this namespace while you were reviewing" in refused.text
    assert "Now (revision 6)" in refused.text  # the new diff, to review again
    assert "60" in rows_of(refused.text)["timeout"]
    assert await value_of(client, owner, production, "timeout") == 60
    forged = await client.post(
        f"/ui/namespaces/{production}/rollback", data={"revision": "1", "expected": "6"}
    )
    assert forged.status_code == 403  # no form token
    assert await value_of(client, owner, production, "timeout") == 60


async def test_viewers_see_history_but_cannot_roll_back(
    app: Any, client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    viewer = await add_user(client, owner, "view@acme.example.com", "viewer")
    async with browser(app) as ui:
        await sign_in(ui, viewer.email)
        history = await ui.get(f"/ui/namespaces/{production}/history")
        assert history.status_code == 200
        assert "/rollback?revision=" not in history.text
        refused = await ui.get(f"/ui/namespaces/{production}/rollback?revision=3")
        assert refused.status_code == 403
        assert "Not allowed" in refused.text and "Ask an admin" in refused.text
        posted = await post_form(
            ui,
            f"/ui/namespaces/{production}/history",
            f"/ui/namespaces/{production}/rollback",
            {"revision": "3", "expected": "5"},
        )
        assert posted.status_code == 403
        versions = await ui.get(f"/ui/namespaces/{production}/entries/timeout/history")
        assert versions.status_code == 200
        assert "Restore this version" not in versions.text
    assert await value_of(client, owner, production, "timeout") == 45


async def test_entry_versions_and_restoring_one(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{production}/entries/timeout/history")
    assert page.status_code == 200
    assert re.findall(r'<tr id="version-(\d+)"', page.text) == ["2", "1"]
    newest = text_of(page.text.split('id="version-2"')[1].split("</tr>")[0])
    assert "live" in newest and "~ changed" in newest and "45" in newest
    assert "Restore version 2 of timeout" not in page.text  # the live one
    restored = await client.post(
        f"/ui/namespaces/{production}/entries/timeout/rollback",
        data={"version": "1", "current": "2", "csrf_token": csrf_of(page.text)},
    )
    assert restored.status_code == 303
    after = await client.get(restored.headers["location"])
    assert "Restored version 1 of timeout as version 3 (revision 6)." in after.text
    assert await value_of(client, owner, production, "timeout") == 30
    stale = await client.post(
        f"/ui/namespaces/{production}/entries/timeout/rollback",
        data={"version": "2", "current": "2", "csrf_token": csrf_of(page.text)},
    )
    assert (
        "changed while you were looking at its history"
        in (await client.get(stale.headers["location"])).text
    )
    assert await value_of(client, owner, production, "timeout") == 30


async def test_a_deleted_entry_comes_back_and_secrets_stay_masked(
    client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    await sign_in(client, owner.email)
    gone = await client.get(f"/ui/namespaces/{production}/entries/debug/history")
    assert "debug is deleted now" in gone.text
    assert REMOVED in gone.text
    back = await client.post(
        f"/ui/namespaces/{production}/entries/debug/rollback",
        data={"version": "1", "current": "", "csrf_token": csrf_of(gone.text)},
    )
    assert back.status_code == 303
    assert await value_of(client, owner, production, "debug") is True
    secret = await client.get(f"/ui/namespaces/{production}/entries/api_key/history")
    assert "********" in secret.text
    assert SECRET not in secret.text
    unknown = await client.get(f"/ui/namespaces/{production}/entries/nope/history")
    assert unknown.status_code == 404
    assert "no key nope" in unknown.text


async def test_the_resolved_view_shows_where_each_key_comes_from(
    app: Any, client: httpx.AsyncClient, owner: Account, production: str
) -> None:
    shared = str((await make_ns(client, owner, "shared/production"))["id"])
    parent = str((await make_ns(client, owner, "payments"))["id"])
    await put(client, owner, shared, "region", value="eu-west-1")  # shared rev 1
    await put(client, owner, shared, "timeout", value=10, value_type="number")  # shared rev 2
    await put(client, owner, parent, "currency", value="EUR")  # payments rev 1
    await put(client, owner, parent, "db_password", value="hunter2", is_secret=True)
    included = await client.patch(
        f"/api/v1/namespaces/{production}",
        headers=owner.headers,
        json={"includes": ["shared/production"]},
    )
    assert included.status_code == 200, included.text
    viewer = await add_user(client, owner, "view@acme.example.com", "viewer")
    async with browser(app) as ui:
        await sign_in(ui, viewer.email)
        page = await ui.get(f"/ui/namespaces/{production}/resolved")
        assert page.status_code == 200
        rows = {
            key: text_of(row).strip()
            for key, row in re.findall(r'<tr id="resolved-([^"]+)"(.*?)</tr>', page.text, re.S)
        }
        assert set(rows) == {"api_key", "currency", "db_password", "region", "timeout"}
        assert "eu-west-1" in rows["region"] and "shared/production at revision 1" in rows["region"]
        assert "payments at revision 1 inherited" in rows["currency"]
        assert (
            "45" in rows["timeout"] and "payments/production at revision 4 own" in rows["timeout"]
        )
        assert "shared/production (rev 2)" in rows["timeout"]  # what it overrides
        assert "********" in rows["db_password"] and "********" in rows["api_key"]
        assert "hunter2" not in page.text and SECRET not in page.text
        assert "Reveal secrets" not in page.text
        refused = await ui.get(f"/ui/namespaces/{production}/resolved?reveal=1")
        assert refused.status_code == 403
    await sign_in(client, owner.email)
    revealed = await client.get(f"/ui/namespaces/{production}/resolved?reveal=1")
    assert "hunter2" in revealed.text and SECRET in revealed.text
    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "config.reveal"}
    )
    assert any(e["target"] == "payments/production" for e in audit.json()["items"])


async def test_the_resolved_view_of_an_empty_namespace_says_what_to_do(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "lonely"))["id"]
    await sign_in(client, owner.email)
    page = await client.get(f"/ui/namespaces/{ns}/resolved")
    assert "Nothing to receive yet" in page.text
    assert "Add an entry" in page.text


@pytest.mark.parametrize(
    "path",
    ["history", "diff?from=1&to=2", "rollback?revision=1", "entries/timeout/history", "resolved"],
)
async def test_another_tenant_gets_not_found(
    app: Any, client: httpx.AsyncClient, production: str, other_tenant: Account, path: str
) -> None:
    async with browser(app) as ui:
        await sign_in(ui, other_tenant.email)
        page = await ui.get(f"/ui/namespaces/{production}/{path}")
        assert page.status_code == 404
        assert "Not found" in page.text
        assert "timeout" not in text_of(page.text).replace("timeout/history", "")
