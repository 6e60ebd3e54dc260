"""Revisions through the API: history, snapshots, diffs and rollbacks, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, add_user, assert_error
from tests.support.revisions import (
    API,
    contents,
    delete_entry,
    namespace_revision,
    new_namespace,
    put_entry,
    snapshot,
)


async def test_ten_changes_every_version_a_diff_and_a_rollback_to_revision_3(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """The issue's "done when": change a config ten times, see every version, diff 3 against 9,
    roll back to 3 and see revision 11 equal to revision 3."""
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "timeout", 1, value_type="number", message="first")
    for n in range(2, 11):
        if n == 5:
            await put_entry(client, owner, ns, "region", "eu-west-1")
        else:
            await put_entry(client, owner, ns, "timeout", n, value_type="number")
    assert await namespace_revision(client, owner, ns) == 10

    history = await client.get(
        f"{API}/namespaces/{ns}/configs/timeout/history", headers=owner.headers
    )
    assert history.status_code == 200, history.text
    versions = history.json()["items"]
    assert [v["version"] for v in versions] == list(range(9, 0, -1))
    assert [v["value"] for v in versions] == [10, 9, 8, 7, 6, 4, 3, 2, 1]
    assert [v["revision"] for v in versions] == [10, 9, 8, 7, 6, 4, 3, 2, 1]
    assert all(v["actor"] == f"user:{owner.user_id}" for v in versions)
    assert versions[-1]["action"] == "create" and versions[0]["action"] == "update"
    assert all(v["value_type"] == "number" and v["created_at"] for v in versions)

    diff = await client.get(
        f"{API}/namespaces/{ns}/diff", headers=owner.headers, params={"from": 3, "to": 9}
    )
    assert diff.status_code == 200, diff.text
    body = diff.json()
    assert (body["from_revision"], body["to_revision"]) == (3, 9)
    assert [a["key"] for a in body["added"]] == ["region"]
    assert body["added"][0]["new"]["value"] == "eu-west-1"
    assert body["removed"] == []
    (changed,) = body["changed"]
    assert changed["key"] == "timeout" and changed["fields"] == ["value"]
    assert (changed["old"]["value"], changed["new"]["value"]) == (3, 9)

    rolled = await client.post(
        f"{API}/namespaces/{ns}/rollback", headers=owner.headers, json={"revision": 3}
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["revision"] == 11 and rolled.json()["committed"] is True
    assert rolled.headers["ETag"] == '"11"'
    assert contents(await snapshot(client, owner, ns, 11)) == contents(
        await snapshot(client, owner, ns, 3)
    )
    assert contents(await snapshot(client, owner, ns, 11)) == {
        "timeout": (3, "number", None, "", False)
    }
    revisions = (await client.get(f"{API}/namespaces/{ns}/revisions", headers=owner.headers)).json()
    latest = revisions["items"][0]
    assert latest["revision"] == 11 and latest["message"] == "roll back to revision 3"
    assert sorted(latest["keys"]) == ["region", "timeout"]
    assert {c["key"]: c["action"] for c in latest["changes"]} == {
        "region": "delete",
        "timeout": "update",
    }


async def test_history_masks_secrets_unless_an_editor_reveals_them(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "db_password", "hunter2", is_secret=True)
    await put_entry(client, owner, ns, "db_password", "correct-horse", is_secret=True)
    url = f"{API}/namespaces/{ns}/configs/db_password/history"

    masked = await client.get(url, headers=owner.headers)
    assert [v["value"] for v in masked.json()["items"]] == ["********", "********"]
    assert "hunter2" not in masked.text and "correct-horse" not in masked.text

    revealed = await client.get(url, headers=owner.headers, params={"reveal": "true"})
    assert [v["value"] for v in revealed.json()["items"]] == ["correct-horse", "hunter2"]

    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    denied = await client.get(url, headers=viewer.headers, params={"reveal": "true"})
    assert_error(denied, 403, "FORBIDDEN")
    assert "hunter2" not in denied.text


async def test_a_value_marked_secret_later_is_masked_in_its_past_too(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "api_key", "leaked-in-plain-text")
    await put_entry(client, owner, ns, "api_key", "rotated", is_secret=True)
    history = await client.get(
        f"{API}/namespaces/{ns}/configs/api_key/history", headers=owner.headers
    )
    assert "leaked-in-plain-text" not in history.text
    assert [v["is_secret"] for v in history.json()["items"]] == [True, False]
    first = await snapshot(client, owner, ns, 1)
    assert first["entries"][0]["value"] == "********"
    diff = await client.get(
        f"{API}/namespaces/{ns}/diff", headers=owner.headers, params={"from": 0}
    )
    assert "leaked-in-plain-text" not in diff.text and "rotated" not in diff.text


async def test_history_pages_through_versions_and_includes_deletions(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    for n in range(5):
        await put_entry(client, owner, ns, "retries", n, value_type="number")
    await delete_entry(client, owner, ns, "retries")
    url = f"{API}/namespaces/{ns}/configs/retries/history"
    first = (await client.get(url, headers=owner.headers, params={"limit": 4})).json()
    assert [v["version"] for v in first["items"]] == [6, 5, 4, 3]
    assert first["items"][0]["action"] == "delete" and first["items"][0]["value"] is None
    rest = await client.get(url, headers=owner.headers, params={"cursor": first["next_cursor"]})
    assert [v["version"] for v in rest.json()["items"]] == [2, 1]
    assert rest.json()["next_cursor"] is None

    missing = await client.get(
        f"{API}/namespaces/{ns}/configs/never/history", headers=owner.headers
    )
    assert_error(missing, 404, "NOT_FOUND")
    bad_cursor = await client.get(url, headers=owner.headers, params={"cursor": "%%%"})
    assert_error(bad_cursor, 422, "VALIDATION_ERROR")


async def test_entry_rollback_writes_a_new_version_and_restores_a_deleted_key(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(
        client,
        owner,
        ns,
        "mode",
        "fast",
        value_type="select",
        validation_schema={"options": ["fast", "safe"]},
        description="how to run",
    )
    await put_entry(
        client,
        owner,
        ns,
        "mode",
        "safe",
        value_type="select",
        validation_schema={"options": ["fast", "safe"]},
    )
    url = f"{API}/namespaces/{ns}/configs/mode/rollback"

    rolled = await client.post(url, headers=owner.headers, json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    entry = rolled.json()
    assert (entry["value"], entry["version"], entry["revision"]) == ("fast", 3, 3)
    assert entry["description"] == "how to run"
    assert rolled.headers["ETag"] == '"3"'

    await delete_entry(client, owner, ns, "mode")
    gone = await client.get(f"{API}/namespaces/{ns}/configs/mode", headers=owner.headers)
    assert_error(gone, 404, "NOT_FOUND")
    restored = await client.post(
        url,
        headers={**owner.headers, "X-Konfig-Message": "bring it back"},
        json={"version": 2},
    )
    assert restored.status_code == 200, restored.text
    assert (restored.json()["value"], restored.json()["version"]) == ("safe", 5)
    revisions = (await client.get(f"{API}/namespaces/{ns}/revisions", headers=owner.headers)).json()
    assert revisions["items"][0]["message"] == "bring it back"
    assert revisions["items"][0]["changes"] == [
        {"key": "mode", "action": "create", "old_version": None, "new_version": 5}
    ]

    deletion = await client.post(url, headers=owner.headers, json={"version": 4})
    assert_error(deletion, 422, "VALIDATION_ERROR")
    unknown = await client.post(url, headers=owner.headers, json={"version": 99})
    assert_error(unknown, 404, "NOT_FOUND")
    stale = await client.post(
        url, headers={**owner.headers, "If-Match": '"1"'}, json={"version": 1}
    )
    assert_error(stale, 412, "PRECONDITION_FAILED")
    fresh = await client.post(
        url, headers={**owner.headers, "If-Match": '"5"'}, json={"version": 1}
    )
    assert fresh.status_code == 200, fresh.text
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    denied = await client.post(url, headers=viewer.headers, json={"version": 1})
    assert_error(denied, 403, "FORBIDDEN")
    assert await namespace_revision(client, owner, ns) == 6


async def test_revisions_list_newest_first_with_messages_and_pages(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    for n in range(5):
        await put_entry(client, owner, ns, f"key_{n}", f"value {n}", message=f"change {n}")
    url = f"{API}/namespaces/{ns}/revisions"
    first = (await client.get(url, headers=owner.headers, params={"limit": 2})).json()
    assert [r["revision"] for r in first["items"]] == [5, 4]
    assert first["items"][0] == {
        "revision": 5,
        "actor": f"user:{owner.user_id}",
        "actor_email": owner.email,
        "message": "change 4",
        "keys": ["key_4"],
        "changes": [{"key": "key_4", "action": "create", "old_version": None, "new_version": 1}],
        "created_at": first["items"][0]["created_at"],
    }
    second = (
        await client.get(
            url, headers=owner.headers, params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    third = (
        await client.get(
            url, headers=owner.headers, params={"limit": 2, "cursor": second["next_cursor"]}
        )
    ).json()
    assert [r["revision"] for r in second["items"] + third["items"]] == [3, 2, 1]
    assert third["next_cursor"] is None
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    assert (await client.get(url, headers=viewer.headers)).status_code == 200


async def test_snapshots_of_revision_zero_past_states_and_unknown_revisions(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    empty = await snapshot(client, owner, ns, 0)
    assert empty["entries"] == [] and empty["actor"] is None and empty["revision"] == 0
    await put_entry(client, owner, ns, "a", "one", message="add a")
    await put_entry(client, owner, ns, "b", {"nested": [1, 2]}, value_type="json")
    await delete_entry(client, owner, ns, "a")
    second = await snapshot(client, owner, ns, 2)
    assert contents(second) == {
        "a": ("one", "string", None, "", False),
        "b": ({"nested": [1, 2]}, "json", None, "", False),
    }
    assert (
        second["namespace"] == "payments/production" and second["actor"] == f"user:{owner.user_id}"
    )
    assert [e["version"] for e in second["entries"]] == [1, 1]
    assert contents(await snapshot(client, owner, ns, 3)) == {
        "b": ({"nested": [1, 2]}, "json", None, "", False)
    }
    assert (await snapshot(client, owner, ns, 1))["message"] == "add a"
    future = await client.get(f"{API}/namespaces/{ns}/revisions/4", headers=owner.headers)
    assert_error(future, 404, "NOT_FOUND")
    negative = await client.get(f"{API}/namespaces/{ns}/revisions/-1", headers=owner.headers)
    assert_error(negative, 422, "VALIDATION_ERROR")


async def test_diff_of_secrets_reverse_diffs_and_bad_revisions(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "token", "s3cret-one", is_secret=True)
    await put_entry(client, owner, ns, "plain", "x")
    await put_entry(client, owner, ns, "token", "s3cret-two", is_secret=True, description="rotated")
    url = f"{API}/namespaces/{ns}/diff"
    masked = await client.get(url, headers=owner.headers, params={"from": 1, "to": 3})
    assert "s3cret" not in masked.text
    (changed,) = masked.json()["changed"]
    assert changed["fields"] == ["value", "description"]
    assert changed["old"]["value"] == changed["new"]["value"] == "********"
    revealed = await client.get(url, headers=owner.headers, params={"from": 1, "reveal": "true"})
    assert revealed.json()["to_revision"] == 3
    (changed,) = revealed.json()["changed"]
    assert (changed["old"]["value"], changed["new"]["value"]) == ("s3cret-one", "s3cret-two")
    backwards = (await client.get(url, headers=owner.headers, params={"from": 3, "to": 1})).json()
    assert [r["key"] for r in backwards["removed"]] == ["plain"]
    same = (await client.get(url, headers=owner.headers, params={"from": 2, "to": 2})).json()
    assert same["added"] == same["removed"] == same["changed"] == []
    assert_error(await client.get(url, headers=owner.headers, params={"from": 9}), 404, "NOT_FOUND")
    assert_error(await client.get(url, headers=owner.headers), 422, "VALIDATION_ERROR")


async def test_namespace_rollback_dry_run_if_match_and_no_op(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "a", "1")
    await put_entry(client, owner, ns, "b", "2")
    await put_entry(client, owner, ns, "a", "3")
    url = f"{API}/namespaces/{ns}/rollback"

    dry = await client.post(
        url, headers=owner.headers, params={"dry_run": "true"}, json={"revision": 1}
    )
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert plan["dry_run"] is True and plan["committed"] is False and plan["revision"] == 3
    assert plan["diff"]["to_revision"] is None
    assert [r["key"] for r in plan["diff"]["removed"]] == ["b"]
    assert [(c["key"], c["old"]["value"], c["new"]["value"]) for c in plan["diff"]["changed"]] == [
        ("a", "3", "1")
    ]
    assert await namespace_revision(client, owner, ns) == 3

    stale = await client.post(
        url, headers={**owner.headers, "If-Match": '"2"'}, json={"revision": 1}
    )
    assert_error(stale, 412, "PRECONDITION_FAILED")
    done = await client.post(
        url, headers={**owner.headers, "If-Match": '"3"'}, json={"revision": 1, "message": "undo"}
    )
    assert done.json()["committed"] is True and done.json()["revision"] == 4
    again = await client.post(url, headers=owner.headers, json={"revision": 4})
    assert again.json()["committed"] is False and again.json()["revision"] == 4
    everything = await client.post(url, headers=owner.headers, json={"revision": 0})
    assert [r["key"] for r in everything.json()["diff"]["removed"]] == ["a"]
    assert (await snapshot(client, owner, ns, 5))["entries"] == []
    future = await client.post(url, headers=owner.headers, json={"revision": 50})
    assert_error(future, 404, "NOT_FOUND")
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    assert_error(
        await client.post(url, headers=viewer.headers, json={"revision": 1}), 403, "FORBIDDEN"
    )


async def test_another_tenant_gets_404_from_every_revision_endpoint(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "a", "1", is_secret=True)
    base = f"{API}/namespaces/{ns}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"{base}/configs/a/history", None),
        ("POST", f"{base}/configs/a/rollback", {"version": 1}),
        ("GET", f"{base}/revisions", None),
        ("GET", f"{base}/revisions/1", None),
        ("GET", f"{base}/diff?from=0", None),
        ("POST", f"{base}/rollback", {"revision": 0}),
        ("GET", f"{base}/document", None),
        ("PUT", f"{base}/document", {"entries": []}),
        ("GET", f"{base}/export?format=yaml", None),
        ("POST", f"{base}/import?format=json", {"entries": []}),
    ]
    for method, url, body in calls:
        for reveal in ("", "reveal=true"):
            target = url + ("&" if "?" in url else "?") + reveal if reveal else url
            answer = await client.request(method, target, headers=other_tenant.headers, json=body)
            assert_error(answer, 404, "NOT_FOUND")
            assert "1" not in answer.json()["error"]["details"].values()
    assert await namespace_revision(client, owner, ns) == 1
