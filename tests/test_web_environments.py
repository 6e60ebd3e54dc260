"""The UI across environments: the comparison grid, copying checked keys in one reviewed
revision, and the dashboard's search box finding keys."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter

from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn
from tests.conftest import Account, add_user
from tests.support.revisions import API, namespace_revision, new_namespace, put_entry
from tests.support.web import csrf_of, sign_in, text_of

PAIR = {"ns": ["payments/staging", "payments/production"]}
NAMES = ["payments/staging", "payments/production"]


async def two_environments(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    ids = {
        n: await new_namespace(client, owner, n)
        for n in ("payments/staging", "payments/production")
    }
    staging, production = ids["payments/staging"], ids["payments/production"]
    await put_entry(client, owner, staging, "max_connections", 10, value_type="number")
    await put_entry(client, owner, production, "max_connections", 50, value_type="number")
    await put_entry(client, owner, staging, "timeout", 30, value_type="number")
    await put_entry(client, owner, production, "timeout", 30, value_type="number")
    await put_entry(client, owner, staging, "debug", True, value_type="boolean")
    await put_entry(client, owner, staging, "api_key", "k-1", is_secret=True)
    await put_entry(client, owner, production, "api_key", "k-2", is_secret=True)
    return ids


def row_of(page: str, key: str) -> str:
    found = re.search(rf'<tr class="cmp-(\w+)" data-key="{key}".*?</tr>', page, re.S)
    assert found, f"no row for {key}"
    return found.group(0)


async def test_the_grid_marks_differences_in_words_and_copies_two_keys_as_one_revision(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await two_environments(client, owner)
    await sign_in(client, owner.email)
    grid = await client.get("/ui/compare", params=PAIR)
    assert grid.status_code == 200, grid.text
    assert 'class="cmp-different" data-key="max_connections"' in grid.text
    assert "≠ differs" in text_of(row_of(grid.text, "max_connections"))
    assert "= same" in text_of(row_of(grid.text, "timeout"))
    debug = row_of(grid.text, "debug")
    assert "∅ missing" in text_of(debug) and "— not set" in text_of(debug)
    assert "k-1" not in grid.text and "k-2" not in grid.text
    assert "≠ differs" in text_of(row_of(grid.text, "api_key"))
    # Review: the diff of the target, nothing written yet.
    before = await namespace_revision(client, owner, ids["payments/production"])
    form: dict[str, str | list[str]] = {
        "csrf_token": csrf_of(grid.text),
        "ns": NAMES,
        "key": ["max_connections", "debug"],
        "source": "payments/staging",
        "target": "payments/production",
    }
    review = await client.post("/ui/compare/copy", data=form)
    assert review.status_code == 200, review.text
    shown = text_of(review.text)
    assert "Copy 2 keys from payments/staging to payments/production?" in shown
    assert "~ changed max_connections" in shown and "+ added debug" in shown
    assert await namespace_revision(client, owner, ids["payments/production"]) == before
    expected = re.search(r'name="expected" value="(\d+)"', review.text)
    assert expected and int(expected.group(1)) == before
    applied = await client.post(
        "/ui/compare/copy/apply",
        data={**form, "expected": expected.group(1), "message": "align"},
    )
    assert applied.status_code == 303, applied.text
    assert await namespace_revision(client, owner, ids["payments/production"]) == before + 1
    after = await client.get(applied.headers["location"])
    assert "Copied 2 keys from payments/staging to payments/production" in text_of(after.text)
    assert "= same" in text_of(row_of(after.text, "max_connections"))
    # Applying the same review again: the target moved on, so it is reviewed anew, not written.
    again = await client.post(
        "/ui/compare/copy/apply",
        data={**form, "expected": expected.group(1)},
    )
    assert again.status_code == 412
    assert "Someone changed payments/production" in text_of(again.text)
    assert await namespace_revision(client, owner, ids["payments/production"]) == before + 1


async def test_the_grid_explains_what_it_cannot_do(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await two_environments(client, owner)
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    await sign_in(client, viewer.email)
    grid = await client.get("/ui/compare", params=PAIR)
    assert grid.status_code == 200
    assert "Copy the checked keys" not in grid.text  # a viewer is not offered the copy
    one = await client.get("/ui/compare", params={"ns": "payments/staging"})
    assert one.status_code == 422 and "Pick at least two environments" in text_of(one.text)
    unknown = await client.get("/ui/compare", params={"ns": [*NAMES, "nope"]})
    assert unknown.status_code == 404 and "no namespace named nope" in text_of(unknown.text)
    refused = await client.post(
        "/ui/compare/copy",
        data={
            "csrf_token": csrf_of(grid.text),
            "ns": NAMES,
            "key": "debug",
            "source": "payments/staging",
            "target": "payments/production",
        },
    )
    assert refused.status_code == 403
    assert "this needs the editor role" in text_of(refused.text)
    assert 'data-key="debug"' in refused.text  # the grid stays beside the reason


async def test_the_search_box_finds_keys_in_every_namespace(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await two_environments(client, owner)
    billing = await new_namespace(client, owner, "billing/production")
    await put_entry(
        client,
        owner,
        billing,
        "pool",
        5,
        value_type="number",
        description="max_connections of the pool",
    )
    await sign_in(client, owner.email)
    found = await client.get("/ui", params={"q": "max_connections"})
    assert found.status_code == 200
    shown = text_of(found.text)
    assert "Nothing matches" not in shown
    assert "Keys matching “max_connections”" in shown
    assert "3 entries in 3 namespaces" in shown
    for namespace in ("payments/staging", "payments/production", "billing/production"):
        assert f'data-namespace="{namespace}"' in found.text
    nothing = await client.get("/ui", params={"q": "no-such-thing"})
    assert "Nothing matches" in text_of(nothing.text)
    assert (await client.get(f"{API}/search", params={"q": "x"})).status_code == 401


async def test_a_restore_shows_only_what_changes_and_restores_only_the_checked_namespaces(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await two_environments(client, owner)
    await new_namespace(client, owner, "untouched")
    made = await client.post(f"{API}/backups", headers=owner.headers)
    assert made.status_code == 201, made.text
    backup = made.json()["id"]
    staging, production = ids["payments/staging"], ids["payments/production"]
    await put_entry(client, owner, staging, "timeout", 99, value_type="number")
    await put_entry(client, owner, production, "timeout", 99, value_type="number")
    await sign_in(client, owner.email)
    confirm = await client.get(f"/ui/admin/backups/{backup}/restore")
    assert confirm.status_code == 200
    listed = re.findall(
        r'class="panel restore-namespace"[^>]*data-namespace="([^"]+)"', confirm.text
    )
    assert sorted(listed) == ["payments/production", "payments/staging"]  # not "untouched"
    assert "1 other in the backup already matches it" in text_of(confirm.text)
    narrowed = await client.get(
        f"/ui/admin/backups/{backup}/restore", params={"ns": "payments/staging"}
    )
    assert re.findall(r'data-namespace="([^"]+)"', narrowed.text) == ["payments/staging"]
    done = await client.post(
        f"/ui/admin/backups/{backup}/restore",
        data={"csrf_token": csrf_of(confirm.text), "selecting": "1", "ns": "payments/staging"},
    )
    assert done.status_code == 303, done.text
    timeout = {
        ns: (
            await client.get(f"{API}/namespaces/{i}/configs/timeout", headers=owner.headers)
        ).json()["value"]
        for ns, i in ids.items()
    }
    assert timeout == {"payments/staging": 30, "payments/production": 99}


async def test_an_unexpected_failure_on_a_page_is_a_konfig_page_with_a_retry(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    router = APIRouter(route_class=UIRoute)

    @router.get("/ui/test/boom")
    async def boom(visitor: SignedIn) -> None:
        raise RuntimeError("an unexpected failure")

    app.api.router.routes.insert(0, router.routes[0])  # before the UI's catch-all 404
    await sign_in(client, owner.email)
    answer = await client.get("/ui/test/boom", params={"x": "1"})
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    shown = text_of(answer.text)
    assert "Something went wrong on our side (request" in shown
    assert "an unexpected failure" not in answer.text  # never the exception itself
    assert 'href="/ui/test/boom?x=1">Try again' in answer.text


async def test_the_resolved_view_shows_nothing_drawn_from_a_namespace_the_visitor_may_not_read(
    client: httpx.AsyncClient, owner: Account
) -> None:
    shared = await new_namespace(client, owner, "shared/production")
    payments = await new_namespace(client, owner, "payments/production")
    await put_entry(client, owner, shared, "db_host", "db.internal")
    await put_entry(client, owner, payments, "url", "pg://${ref:shared/production:db_host}")
    viewer = await add_user(
        client,
        owner,
        "pv@acme.example.com",
        grants=[{"role": "viewer", "namespaces": "payments/**"}],
    )
    await sign_in(client, viewer.email)
    answer = await client.get(f"/ui/namespaces/{payments}/resolved")
    assert answer.status_code == 403
    assert "you may not read namespace shared/production" in text_of(answer.text)
    assert "db.internal" not in answer.text
    await sign_in(client, owner.email)
    shown = await client.get(f"/ui/namespaces/{payments}/resolved")
    assert shown.status_code == 200 and "pg://db.internal" in shown.text


async def test_a_viewer_reads_an_entry_without_being_served_an_edit_form(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await two_environments(client, owner)
    viewer = await add_user(client, owner, "reader@acme.example.com", "viewer")
    await sign_in(client, viewer.email)
    page_ = await client.get(f"/ui/namespaces/{ids['payments/staging']}/entries/max_connections")
    assert page_.status_code == 200
    assert "<form" not in page_.text.split("<main", 1)[1]  # no editor, no form at all
    assert "Edit max_connections" not in text_of(page_.text)
    assert "10" in text_of(page_.text.split('id="entry-readonly"', 1)[1])
    secret = await client.get(f"/ui/namespaces/{ids['payments/staging']}/entries/api_key")
    assert "k-1" not in secret.text and "********" in secret.text
    await sign_in(client, owner.email)
    editor = await client.get(f"/ui/namespaces/{ids['payments/staging']}/entries/max_connections")
    assert "Edit max_connections" in text_of(editor.text)


async def test_the_token_page_names_a_token_s_owner_by_email(
    client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_user(client, owner, "maker@acme.example.com", "editor")
    made = await client.post(
        f"{API}/tokens",
        headers=editor.headers,
        json={"name": "ci", "scopes": [{"namespaces": "**", "permissions": ["read"]}]},
    )
    assert made.status_code == 201, made.text
    await sign_in(client, owner.email)
    listed = await client.get("/ui/admin/tokens")
    assert listed.status_code == 200
    row = listed.text.split('data-label="Owner"', 1)[1].split("</td>", 1)[0]
    assert "maker@acme.example.com" in row


async def test_change_notes_show_in_an_entry_s_history_and_in_diffs(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner, "orders/production")
    await put_entry(client, owner, ns, "timeout", 30, value_type="number", message="first cut")
    await put_entry(client, owner, ns, "timeout", 45, value_type="number", message="slow upstream")
    await sign_in(client, owner.email)
    history = await client.get(f"/ui/namespaces/{ns}/entries/timeout/history")
    shown = text_of(history.text)
    assert "“slow upstream”" in shown and "“first cut”" in shown
    diff = await client.get(f"/ui/namespaces/{ns}/diff", params={"from": 1, "to": 2})
    assert "Revision 2: “slow upstream”" in text_of(diff.text)


async def test_a_json_diff_names_the_fields_that_changed(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner, "orders/production")
    before = {"db": {"pool": {"size": 5, "timeout": 30}, "host": "a"}, "hosts": ["x", "y"]}
    after = {"db": {"pool": {"size": 8, "timeout": 30}, "host": "a"}, "hosts": ["x", "z"]}
    await put_entry(client, owner, ns, "settings", before, value_type="json")
    await put_entry(client, owner, ns, "settings", after, value_type="json")
    await sign_in(client, owner.email)
    diff = await client.get(f"/ui/namespaces/{ns}/diff", params={"from": 1, "to": 2})
    paths = re.findall(r'<code class="changed-path">([^<]+)</code>', diff.text)
    assert paths == ["db.pool.size", "hosts[1]"]


async def test_history_filters_by_key_author_and_date(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner, "orders/production")
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    await put_entry(client, owner, ns, "timeout", 30, value_type="number")
    await put_entry(client, editor, ns, "region", "eu")
    await put_entry(client, owner, ns, "timeout", 45, value_type="number")
    api = f"{API}/namespaces/{ns}/revisions"

    async def numbers(**params: str) -> list[int]:
        answer = await client.get(api, headers=owner.headers, params=params)
        assert answer.status_code == 200, answer.text
        return [r["revision"] for r in answer.json()["items"]]

    assert await numbers(key="timeout") == [3, 1]
    assert await numbers(author="ed@acme.example.com") == [2]
    assert await numbers(author="nobody@acme.example.com") == []
    assert await numbers(since="2000-01-01T00:00:00Z", key="region") == [2]
    assert await numbers(until="2000-01-01T00:00:00Z") == []
    await sign_in(client, owner.email)
    page_ = await client.get(f"/ui/namespaces/{ns}/history", params={"key": "region"})
    assert page_.status_code == 200
    shown = re.findall(r"Revision r(\d+)", text_of(page_.text.split('id="revisions-title"', 1)[1]))
    assert shown == ["2"]
    bad = await client.get(f"/ui/namespaces/{ns}/history", params={"since": "yesterday"})
    assert bad.status_code == 422 and "Enter a date as YYYY-MM-DD." in text_of(bad.text)
