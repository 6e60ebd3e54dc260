"""Protected namespaces: a change opens a change request, others review it, the merge commits
it as one revision (issue 19's done-when), through HTTP on every backend."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Account, assert_error
from tests.support.changes import done, listed, propose, protect, step
from tests.support.grants import add_granted, grant
from tests.support.readpath import make_namespace, set_entry, waiting

EDITOR = [grant("viewer", "**"), grant("editor", "payments/**")]
READ_PATH = "/api/v1/config/payments/production"


async def test_done_when_review_conflict_rebase_and_watchers(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await set_entry(client, owner, production, "limit", "5")
    await set_entry(client, owner, production, "rate", "1")
    await protect(client, owner, "*/production", approvals_required=1)
    alice = await add_granted(client, owner, "alice@acme.example.com", EDITOR)
    bob = await add_granted(client, owner, "bob@acme.example.com", EDITOR)

    # An editor's change opens a request; a second key goes into the same draft.
    opened = await propose(client, alice, production, "limit", "10", message="Raise the limit")
    assert opened["status"] == "draft" and opened["namespace"] == "payments/production"
    again = await propose(client, alice, production, "rate", "2")
    assert again["id"] == opened["id"] and again["keys"] == ["limit", "rate"]
    cr1 = opened["id"]
    read = await client.get(READ_PATH, headers=owner.headers)
    assert read.json() == {"limit": "5", "rate": "1"}  # nothing committed
    assert_error(
        await client.get(f"/api/v1/change-requests/{cr1}", headers=bob.headers), 404, "NOT_FOUND"
    )

    submitted = await done(client, alice, cr1, "submit")
    assert submitted["status"] == "open" and submitted["title"] == "Raise the limit"
    changes = {c["key"]: c for c in submitted["changes"]}
    assert changes["limit"]["before"]["value"] == "5" and changes["limit"]["after"]["value"] == "10"
    assert changes["limit"]["action"] == "update" and not changes["limit"]["conflict"]

    # The same editor cannot approve it; a second editor can.
    refused = assert_error(await step(client, alice, cr1, "approve"), 403, "FORBIDDEN")
    assert "you wrote this change request" in refused["message"]
    assert [r["id"] for r in await listed(client, bob, waiting_for_me="true")] == [cr1]
    assert await listed(client, alice, waiting_for_me="true") == []
    approved = await done(client, bob, cr1, "approve", comment="Looks right")
    assert approved["status"] == "approved" and approved["approved_by"] == [bob.email]
    assert approved["may_merge"] is True  # an approver may merge, as may the author

    # Meanwhile bob changes the same key through his own request, and merges it first.
    cr2 = (await propose(client, bob, production, "limit", "7"))["id"]
    await done(client, bob, cr2, "submit")
    await done(client, alice, cr2, "approve")
    await done(client, bob, cr2, "merge")

    conflict = assert_error(await step(client, alice, cr1, "merge"), 409, "CONFLICT")
    assert conflict["details"]["keys"] == ["limit"] and "limit" in conflict["message"]
    assert (await client.get(READ_PATH, headers=owner.headers)).json() == {
        "limit": "7",
        "rate": "1",
    }
    await done(client, alice, cr1, "reject", comment="superseded")

    # A change to other keys meanwhile is rebased over; watchers see it only once merged.
    cr3 = (await propose(client, alice, production, "rate", "3", message="Faster"))["id"]
    await done(client, alice, cr3, "submit")
    cr4 = (await propose(client, bob, production, "timeout", "30"))["id"]
    await done(client, bob, cr4, "submit")
    await done(client, alice, cr4, "approve")
    await done(client, alice, cr4, "merge")  # an approver merges
    current = await client.get(READ_PATH, headers=owner.headers)
    etag = current.headers["etag"]
    watch = await waiting(
        client,
        client.get(
            READ_PATH, headers={**owner.headers, "If-None-Match": etag}, params={"wait": "20"}
        ),
    )
    await done(client, bob, cr3, "approve")
    await asyncio.sleep(0)
    assert not watch.done()
    history_before = (
        await client.get(f"/api/v1/namespaces/{production}/revisions", headers=owner.headers)
    ).json()["items"]
    merged = await done(client, alice, cr3, "merge")
    assert merged["status"] == "merged"
    seen = await asyncio.wait_for(watch, 10)
    assert seen.status_code == 200 and seen.json()["rate"] == "3" and seen.json()["limit"] == "7"

    history = (
        await client.get(f"/api/v1/namespaces/{production}/revisions", headers=owner.headers)
    ).json()["items"]
    assert len(history) == len(history_before) + 1
    newest = history[0]
    assert newest["revision"] == merged["merged_revision"] and newest["keys"] == ["rate"]
    assert alice.email in newest["message"] and bob.email in newest["message"]
    assert cr3 in newest["message"] and newest["message"].startswith("Faster")
    audited = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "change_request.merge"}
    )
    merge_audit = next(e for e in audited.json()["items"] if e["target"] == cr3)
    assert merge_audit["summary"]["approved_by"] == [bob.email]
    assert merge_audit["summary"]["revision"] == newest["revision"]
    assert merge_audit["summary"]["message"] == newest["message"]
