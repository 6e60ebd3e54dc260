"""Protection policies, soft-enforcement bypasses, every write path turned into proposals,
secrets in a request's diff, tenants apart, and the change_request.* webhooks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, assert_error, make_settings, register
from tests.support.changes import REQUESTS, done, propose, protect, step
from tests.support.grants import add_granted, audit_of, grant
from tests.support.readpath import make_namespace, put_entry, set_entry
from tests.support.webhooks import receiving, subscribe

POLICIES = "/api/v1/protection-policies"
EDITOR = [grant("viewer", "**"), grant("editor", "payments/**")]


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend.url,
        tmp_path,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_poll_seconds=0.2,
    )


async def test_policies_are_for_admins_checked_and_kept_per_tenant(
    client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_granted(client, owner, "ed@acme.example.com", EDITOR)
    assert_error(
        await client.post(POLICIES, headers=editor.headers, json={"namespaces": "*/production"}),
        403,
        "FORBIDDEN",
    )
    for bad, field in (
        ({"namespaces": "Not A Pattern!"}, "namespaces"),
        ({"namespaces": "*/prod", "approvals_required": 0}, "approvals_required"),
        ({"namespaces": "*/prod", "enforcement": "strict"}, "enforcement"),
        ({"namespaces": "*/prod", "approvers": [{"role": "admin", "group": "x"}]}, "approvers"),
        ({"namespaces": "*/prod", "surprise": True}, "surprise"),
    ):
        refused = assert_error(
            await client.post(POLICIES, headers=owner.headers, json=bad), 422, "VALIDATION_ERROR"
        )
        assert field in str(refused), refused
    unknown = assert_error(
        await client.post(
            POLICIES,
            headers=owner.headers,
            json={"namespaces": "*/prod", "approvers": [{"group": "sre"}]},
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert "sre" in unknown["message"]

    production = await make_namespace(client, owner, "payments/production")
    policy = await protect(client, owner, "*/production", approvals_required=2)
    assert policy["enforcement"] == "hard" and policy["allow_self_approval"] is False
    assert (await client.get(POLICIES, headers=editor.headers)).json()[0]["id"] == policy["id"]
    written = await put_entry(client, owner.headers, production, "limit", "1")
    assert written.status_code == 202 and written.json()["approvals_required"] == 2
    changed = await client.patch(
        f"{POLICIES}/{policy['id']}", headers=owner.headers, json={"enforcement": "soft"}
    )
    assert changed.status_code == 200 and changed.json()["enforcement"] == "soft"
    assert [
        e["summary"]["after"]["enforcement"]
        for e in await audit_of(client, owner, "protection_policy.update")
    ] == ["soft"]

    globex = await register(client, "globex")
    for method in ("GET", "PATCH", "DELETE"):
        answer = await client.request(
            method,
            f"{POLICIES}/{policy['id']}",
            headers=globex.headers,
            json={} if method == "PATCH" else None,
        )
        assert_error(answer, 404, "NOT_FOUND")
    assert (await client.get(POLICIES, headers=globex.headers)).json() == []
    assert_error(
        await client.get(f"{REQUESTS}/{written.json()['id']}", headers=globex.headers),
        404,
        "NOT_FOUND",
    )
    assert (await client.get(REQUESTS, headers=globex.headers)).json()["items"] == []

    gone = await client.delete(f"{POLICIES}/{policy['id']}", headers=owner.headers)
    assert gone.status_code == 204
    direct = await put_entry(client, owner.headers, production, "limit", "2")
    assert direct.status_code == 201 and direct.json()["value"] == "2"


async def test_soft_enforcement_lets_an_admin_bypass_with_a_reason_audited_and_shown(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await protect(client, owner, "payments/production", enforcement="soft")
    editor = await add_granted(client, owner, "ed@acme.example.com", EDITOR)
    url = f"/api/v1/namespaces/{production}/configs/limit"
    body = {"value": "9"}
    reason = {"X-Konfig-Bypass-Reason": "incident 42: checkout is down"}

    refused = assert_error(
        await client.put(url, headers={**editor.headers, **reason}, json=body), 403, "FORBIDDEN"
    )
    assert "admin or owner" in refused["message"]
    assert_error(
        await client.put(url, headers={**owner.headers, "X-Konfig-Bypass-Reason": " "}, json=body),
        422,
        "VALIDATION_ERROR",
    )
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, events=["change_request.bypassed"])
        bypassed = await client.put(url, headers={**owner.headers, **reason}, json=body)
        assert bypassed.status_code == 201 and bypassed.json()["value"] == "9"
        (delivered,) = await receiver.wait_for(1)
    sent = delivered.verified(hook["secret"])
    assert sent["type"] == "change_request.bypassed"
    assert sent["data"]["reason"] == reason["X-Konfig-Bypass-Reason"]
    assert sent["data"]["changed_keys"] == ["limit"]
    (revision,) = (
        await client.get(f"/api/v1/namespaces/{production}/revisions", headers=owner.headers)
    ).json()["items"]
    assert revision["message"].startswith("[bypass: incident 42: checkout is down]")
    (audited,) = await audit_of(client, owner, "change_request.bypass")
    assert audited["summary"]["reason"] == reason["X-Konfig-Bypass-Reason"]
    without = await put_entry(client, owner.headers, production, "limit", "10")
    assert without.status_code == 202  # no reason: the owner's change is proposed too


async def test_documents_imports_and_rollbacks_are_proposed_not_committed(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await set_entry(client, owner, production, "limit", "5")
    await set_entry(client, owner, production, "limit", "6")
    await protect(client, owner, "payments/**")
    editor = await add_granted(client, owner, "ed@acme.example.com", EDITOR)
    base = f"/api/v1/namespaces/{production}"

    document = await client.put(
        f"{base}/document",
        headers=editor.headers,
        json={"entries": [{"key": "limit", "value": "7"}, {"key": "mode", "value": "fast"}]},
    )
    assert document.status_code == 202, document.text
    assert document.json()["committed"] is False
    request = document.json()["change_request"]
    assert document.headers["location"] == f"{REQUESTS}/{request['id']}"
    imported = await client.post(
        f"{base}/import",
        headers={**editor.headers, "Content-Type": "text/plain"},
        params={"format": "env", "mode": "merge"},
        content=b"TIMEOUT=30\n",
    )
    assert imported.status_code == 202, imported.text
    assert imported.json()["change_request"]["id"] == request["id"]
    key_back = await client.post(
        f"{base}/configs/limit/rollback", headers=editor.headers, json={"version": 1}
    )
    assert key_back.status_code == 202 and key_back.json()["id"] == request["id"]
    whole_back = await client.post(f"{base}/rollback", headers=editor.headers, json={"revision": 1})
    assert whole_back.status_code == 202, whole_back.text
    draft = (await client.get(f"{REQUESTS}/{request['id']}", headers=editor.headers)).json()
    assert draft["keys"] == ["TIMEOUT", "limit", "mode"] and draft["status"] == "draft"
    assert {c["key"]: c["after"]["value"] for c in draft["changes"] if c["after"]} == {
        "TIMEOUT": "30",
        "limit": "5",  # the rollbacks' (against what is committed), after the document's 7
        "mode": "fast",
    }
    assert [c["action"] for c in draft["changes"]] == ["create", "update", "create"]
    resolved = await client.get("/api/v1/config/payments/production", headers=owner.headers)
    assert resolved.json() == {"limit": "6"}
    (revision, *_) = (await client.get(f"{base}/revisions", headers=owner.headers)).json()["items"]
    assert revision["revision"] == 2


async def test_a_secret_reads_masked_in_a_diff_unless_an_editor_reveals_it(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await protect(client, owner, "payments/production")
    editor = await add_granted(client, owner, "ed@acme.example.com", EDITOR)
    viewer = await add_granted(client, owner, "view@acme.example.com", [grant("viewer", "**")])
    written = await client.put(
        f"/api/v1/namespaces/{production}/configs/db_password",
        headers=editor.headers,
        json={"value": "Hunter-2222", "is_secret": True},
    )
    assert written.status_code == 202 and "Hunter" not in written.text
    request_id = written.json()["id"]
    await done(client, editor, request_id, "submit")
    url = f"{REQUESTS}/{request_id}"
    seen = await client.get(url, headers=viewer.headers)
    assert seen.status_code == 200 and "Hunter" not in seen.text
    assert seen.json()["changes"][0]["after"]["value"] == "********"
    assert seen.json()["may_approve"] is False
    assert_error(
        await client.get(url, headers=viewer.headers, params={"reveal": "true"}), 403, "FORBIDDEN"
    )
    revealed = await client.get(url, headers=editor.headers, params={"reveal": "true"})
    assert revealed.json()["changes"][0]["after"]["value"] == "Hunter-2222"
    assert_error(await step(client, viewer, request_id, "approve"), 403, "FORBIDDEN")
    audited = await audit_of(client, owner, "change_request.submit")
    assert audited and "Hunter" not in str(audited)


async def test_group_approvers_and_the_webhooks_of_a_request(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    made = await client.post(
        "/api/v1/groups", headers=owner.headers, json={"name": "sre", "grants": []}
    )
    assert made.status_code == 201, made.text
    await protect(client, owner, "payments/production", approvers=[{"group": "sre"}])
    author = await add_granted(client, owner, "dev@acme.example.com", EDITOR)
    other = await add_granted(client, owner, "other@acme.example.com", EDITOR)
    sre = await add_granted(client, owner, "sre@acme.example.com", [grant("viewer", "**")])
    joined = await client.put(
        f"/api/v1/users/{sre.user_id}/groups", headers=owner.headers, json={"groups": ["sre"]}
    )
    assert joined.status_code == 200, joined.text
    events = [
        "change_request.opened",
        "change_request.approved",
        "change_request.merged",
        "change_request.rejected",
    ]
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, events=events)
        first = (await propose(client, author, production, "limit", "1"))["id"]
        await done(client, author, first, "submit")
        refused = assert_error(await step(client, other, first, "approve"), 403, "FORBIDDEN")
        assert "approvers" in refused["message"]
        await done(client, sre, first, "approve")
        merged = await done(client, author, first, "merge")
        assert merged["status"] == "merged" and merged["approved_by"] == [sre.email]
        second = (await propose(client, author, production, "limit", "2"))["id"]
        assert second != first
        await done(client, author, second, "submit")
        talk = await done(client, other, second, "comment", body="why 2?")
        assert [(e["kind"], e["actor_name"]) for e in talk["events"]] == [
            ("submit", author.email),
            ("comment", other.email),
        ]
        await done(client, sre, second, "reject", comment="no")
        assert_error(await step(client, author, second, "merge"), 409, "CONFLICT")
        received = await receiver.wait_for(5)
    page = (await client.get(REQUESTS, headers=other.headers, params={"limit": 1})).json()
    assert [r["id"] for r in page["items"]] == [second] and page["next_cursor"]
    rest = await client.get(
        REQUESTS, headers=other.headers, params={"limit": 1, "cursor": page["next_cursor"]}
    )
    assert [r["id"] for r in rest.json()["items"]] == [first]
    assert_error(
        await client.get(REQUESTS, headers=other.headers, params={"cursor": "nope"}),
        422,
        "VALIDATION_ERROR",
    )
    sent = [r.verified(hook["secret"]) for r in received]
    assert [s["type"] for s in sent] == [
        "change_request.opened",
        "change_request.approved",
        "change_request.merged",
        "change_request.opened",
        "change_request.rejected",
    ]
    assert sent[2]["data"]["change_request_id"] == first and sent[2]["data"]["revision"] == 1
    assert all(s["data"]["namespace"] == "payments/production" for s in sent)


async def test_a_role_approver_and_self_approval_allowed(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await protect(client, owner, "payments/production", approvers=[{"role": "admin"}])
    author = await add_granted(client, owner, "dev@acme.example.com", EDITOR)
    peer = await add_granted(client, owner, "peer@acme.example.com", EDITOR)
    request = (await propose(client, author, production, "limit", "1"))["id"]
    await done(client, author, request, "submit")
    refused = assert_error(await step(client, peer, request, "approve"), 403, "FORBIDDEN")
    assert "not among the approvers" in refused["message"]
    assert (await done(client, owner, request, "approve"))["status"] == "approved"
    assert_error(await step(client, peer, request, "merge"), 403, "FORBIDDEN")
    assert (await done(client, author, request, "merge"))["status"] == "merged"

    mine = await propose(client, owner, production, "limit", "2")  # an owner proposes too
    await done(client, owner, mine["id"], "submit")
    assert_error(await step(client, owner, mine["id"], "approve"), 403, "FORBIDDEN")
    policy = (await client.get(POLICIES, headers=owner.headers)).json()[0]
    await client.patch(
        f"{POLICIES}/{policy['id']}", headers=owner.headers, json={"allow_self_approval": True}
    )
    assert (await done(client, owner, mine["id"], "approve"))["status"] == "approved"


async def test_writing_a_key_back_takes_it_out_of_the_draft(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    await set_entry(client, owner, production, "limit", "5")
    await protect(client, owner, "payments/production")
    editor = await add_granted(client, owner, "ed@acme.example.com", EDITOR)
    draft = await propose(client, editor, production, "limit", "7")
    assert (await propose(client, editor, production, "mode", "fast"))["keys"] == ["limit", "mode"]
    back = await propose(client, editor, production, "limit", "5")  # as committed
    assert back["id"] == draft["id"] and back["keys"] == ["mode"]
    again = await put_entry(client, editor.headers, production, "limit", "5")
    assert again.status_code == 200 and again.json()["version"] == 1  # nothing to take back
    (audited,) = await audit_of(client, owner, "change_request.withdraw_keys")
    assert audited["summary"]["keys"] == ["limit"]
