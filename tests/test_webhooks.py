"""Webhooks through the API, on every backend: endpoints, events committed with their changes,
deliveries a receiver built only with ``standardwebhooks`` verifies, inheritance, retries."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, add_user, assert_error, make_settings
from tests.support.readpath import make_namespace, put_entry
from tests.support.webhooks import (
    Received,
    deliveries,
    payloads,
    receiving,
    settled,
    slow,
    subscribe,
    types,
)

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    """Loopback receivers are allowed here, explicitly; retries come quickly."""
    return make_settings(
        backend.url,
        tmp_path,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_poll_seconds=0.2,
        webhook_retry_delays=[0.2, 0.2, 0.2, 0.2],
        webhook_timeout_seconds=2,
    )


async def test_an_admin_creates_lists_reads_updates_and_deletes_a_webhook(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    created = await subscribe(
        client, owner, "http://127.0.0.1:9/hook", ["config.changed", "token.revoked"], "payments/**"
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["config.changed", "token.revoked"]
    assert created["namespaces"] == "payments/**" and created["enabled"] is True
    hook = f"/api/v1/webhooks/{created['id']}"
    read = await client.get(hook, headers=owner.headers)
    assert read.status_code == 200 and "secret" not in read.json()
    listed = await client.get("/api/v1/webhooks", headers=owner.headers)
    assert [w["id"] for w in listed.json()["items"]] == [created["id"]]
    assert "secret" not in listed.text.replace('"previous_secret_expires_at"', "")

    changed = await client.patch(
        hook, headers=owner.headers, json={"enabled": False, "description": "CI"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False and changed.json()["description"] == "CI"

    assert_error(await client.get(hook, headers=other_tenant.headers), 404, "NOT_FOUND")
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    assert_error(await client.get(hook, headers=editor.headers), 403, "FORBIDDEN")

    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"target_type": "webhook"}
    )
    actions = {e["action"] for e in audit.json()["items"]}
    assert {"webhook.create", "webhook.update"} <= actions
    assert created["secret"] not in audit.text

    assert (await client.delete(hook, headers=owner.headers)).status_code == 204
    assert_error(await client.get(hook, headers=owner.headers), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "http://10.0.0.7/hook",  # private, not allowed here
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]:8080/hook",  # loopback v6: only 127.0.0.0/8 is allowed here
        "http://[fd00::1]/hook",  # unique-local
        "http://user:pw@127.0.0.1/hook",
        "not a url",
        "http://nonexistent.invalid/hook",  # does not resolve
        "http://127.0.0.1/hook#fragment",
    ],
)
async def test_a_target_that_is_not_a_public_address_is_refused(
    client: httpx.AsyncClient, owner: Account, url: str
) -> None:
    answer = await client.post(
        "/api/v1/webhooks", headers=owner.headers, json={"url": url, "events": ["config.changed"]}
    )
    error = assert_error(answer, 422, "VALIDATION_ERROR")
    assert "pw" not in error["message"]


async def test_a_name_is_resolved_and_its_addresses_checked(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """localhost resolves to loopback, which this server allows (127.0.0.0/8) only for IPv4."""
    answer = await client.post(
        "/api/v1/webhooks",
        headers=owner.headers,
        json={"url": "http://localhost:9/hook", "events": ["config.changed"]},
    )
    if answer.status_code == 422:  # localhost also resolves to ::1 here, which is not allowed
        assert "::1" in answer.json()["error"]["message"]
    else:
        assert answer.status_code == 201, answer.text


async def test_bad_bodies_are_refused_in_the_one_shape(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for body in (
        {"url": "http://127.0.0.1/h", "events": []},
        {"url": "http://127.0.0.1/h", "events": ["config.exploded"]},
        {"url": "http://127.0.0.1/h", "events": ["config.changed"], "namespaces": "Bad Pattern"},
        {"url": "http://127.0.0.1/h", "events": ["config.changed"], "extra": 1},
    ):
        answer = await client.post("/api/v1/webhooks", headers=owner.headers, json=body)
        assert_error(answer, 422, "VALIDATION_ERROR")


async def test_a_change_is_delivered_signed_and_a_standard_receiver_verifies_it(
    client: httpx.AsyncClient, owner: Account
) -> None:
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url)
        namespace = await make_namespace(client, owner, "payments")
        written = await put_entry(
            client, owner.headers, namespace, "db_password", "hunter2", is_secret=True
        )
        assert written.status_code in (200, 201), written.text
        (request,) = await receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert payload["type"] == "config.changed"
    assert payload["timestamp"].endswith("Z")
    assert payload["data"] == {
        "namespace": "payments",
        "source_namespace": "payments",
        "old_revision": 0,
        "new_revision": 1,
        "changed_keys": ["db_password"],
        "changed_keys_total": 1,
        "actor": f"user:{owner.user_id}",
        "message": None,
    }
    assert b"hunter2" not in request.body
    assert request.headers["webhook-id"].startswith("msg_")
    (delivered,) = await settled(client, owner, hook["id"], 1)
    assert delivered["status"] == "succeeded" and delivered["message_id"] == request.message_id
    (attempt,) = delivered["log"]
    assert attempt["status_code"] == 200 and attempt["response"] == "thanks"


async def test_a_change_to_a_parent_or_an_include_reaches_the_subscribers_of_what_inherits_it(
    client: httpx.AsyncClient, owner: Account
) -> None:
    parent = await make_namespace(client, owner, "payments")
    await make_namespace(client, owner, "payments/production")
    shared = await make_namespace(client, owner, "shared")
    await make_namespace(client, owner, "billing", includes=["shared"])
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, namespaces="payments/production")
        other = await subscribe(
            client, owner, receiver.url.replace("/hook", "/billing"), namespaces="billing"
        )
        assert (await put_entry(client, owner.headers, parent, "region", "eu")).status_code == 201
        assert (await put_entry(client, owner.headers, shared, "tz", "UTC")).status_code == 201
        received = await receiver.wait_for(2)
    by_path = {r.path: r for r in received}
    child = by_path["/hook"].verified(hook["secret"])["data"]
    assert child["namespace"] == "payments/production"
    assert child["source_namespace"] == "payments" and child["inherited"] is True
    assert child["changed_keys"] == ["region"]
    included = by_path["/billing"].verified(other["secret"])["data"]
    assert included["namespace"] == "billing" and included["source_namespace"] == "shared"
    assert len(received) == 2  # the parents themselves match neither subscription


async def test_inheritance_is_followed_through_includes_of_includes_and_their_descendants(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """Who inherits a change is found level by level (``inheritors_of``): an includer's
    descendants, an includer of the includer, and not a namespace whose name only starts
    alike."""
    shared = await make_namespace(client, owner, "shared")
    await make_namespace(client, owner, "shared_eu")  # a name that starts alike
    await make_namespace(client, owner, "billing", includes=["shared"])
    await make_namespace(client, owner, "billing/eu")
    await make_namespace(client, owner, "audit", includes=["billing"])
    await make_namespace(client, owner, "orders")
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url)
        assert (await put_entry(client, owner.headers, shared, "tz", "UTC")).status_code == 201
        received = await receiver.wait_for(4)
        await asyncio.sleep(0.5)  # nothing more comes
    told = sorted(p["data"]["namespace"] for p in payloads(receiver.received, hook["secret"]))
    assert told == ["audit", "billing", "billing/eu", "shared"]
    assert len(receiver.received) == len(received) == 4


async def test_a_receiver_down_gets_every_event_afterwards_in_order_once_each(
    client: httpx.AsyncClient, owner: Account
) -> None:
    def down_at_first(n: int, _request: Received) -> tuple[int, dict[str, str], bytes]:
        return (503, {}, b"down") if n < 3 else (200, {}, b"up")

    with receiving(down_at_first) as receiver:
        hook = await subscribe(client, owner, receiver.url)
        namespace = await make_namespace(client, owner, "payments")
        for n in range(5):
            await put_entry(client, owner.headers, namespace, "counter", str(n))
        await receiver.wait_for(8)  # 3 refused, then the 5
    kept = receiver.deduplicated()
    revisions = [p["data"]["new_revision"] for p in payloads(kept, hook["secret"])]
    assert revisions == [1, 2, 3, 4, 5]
    succeeded = receiver.received[3:]
    assert [p["data"]["new_revision"] for p in payloads(succeeded, hook["secret"])] == [
        1,
        2,
        3,
        4,
        5,
    ]
    log = await settled(client, owner, hook["id"], 5)
    assert {d["status"] for d in log} == {"succeeded"}
    first = next(d for d in log if d["payload"]["data"]["new_revision"] == 1)
    assert [a["status_code"] for a in first["log"]] == [503, 503, 503, 200]


async def test_other_event_types_are_delivered_to_their_subscribers(
    client: httpx.AsyncClient, owner: Account
) -> None:
    with receiving() as receiver:
        hook = await subscribe(
            client,
            owner,
            receiver.url,
            ["namespace.created", "namespace.deleted", "token.revoked"],
        )
        namespace = await make_namespace(client, owner, "payments")
        token = await client.post(
            "/api/v1/tokens",
            headers=owner.headers,
            json={"name": "ci", "scopes": [{"namespaces": "**", "permissions": ["read"]}]},
        )
        assert token.status_code == 201, token.text
        revoked = await client.delete(f"/api/v1/tokens/{token.json()['id']}", headers=owner.headers)
        assert revoked.status_code == 204
        deleted = await client.delete(f"/api/v1/namespaces/{namespace}", headers=owner.headers)
        assert deleted.status_code == 204
        received = await receiver.wait_for(3)
    # In order per namespace; a token's event has none, so it may come before or after them.
    assert [t for t in types(received) if t != "token.revoked"] == [
        "namespace.created",
        "namespace.deleted",
    ]
    assert sorted(types(received)) == ["namespace.created", "namespace.deleted", "token.revoked"]
    data = payloads(received, hook["secret"])
    (revoked_event,) = [d for d in data if d["type"] == "token.revoked"]
    assert revoked_event["data"]["name"] == "ci" and token.json()["token"] not in str(data)


async def test_gone_disables_the_endpoint_and_says_so_in_the_audit_log(
    client: httpx.AsyncClient, owner: Account
) -> None:
    with receiving(lambda _n, _r: (410, {}, b"gone")) as receiver:
        hook = await subscribe(client, owner, receiver.url)
        namespace = await make_namespace(client, owner, "payments")
        await put_entry(client, owner.headers, namespace, "a", "1")
        await receiver.wait_for(1)
        (delivery,) = await settled(client, owner, hook["id"], 1)
    assert delivery["status"] == "failed"
    read = (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=owner.headers)).json()
    assert read["enabled"] is False and "410" in read["disabled_reason"]
    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "webhook.disable"}
    )
    (event,) = audit.json()["items"]
    assert event["actor"] == "konfig:webhooks"


async def test_retry_after_is_honoured_and_redeliver_and_test_ping_keep_their_ids(
    client: httpx.AsyncClient, owner: Account
) -> None:
    def busy_once(n: int, _r: Received) -> tuple[int, dict[str, str], bytes]:
        return (429, {"Retry-After": "1"}, b"slow down") if n == 0 else (200, {}, b"ok")

    with receiving(busy_once) as receiver:
        hook = await subscribe(client, owner, receiver.url)
        ping = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=owner.headers)
        assert ping.status_code == 202, ping.text
        first, second = await receiver.wait_for(2)
        assert first.message_id == second.message_id == ping.json()["message_id"]
        (delivery,) = await settled(client, owner, hook["id"], 1)
        assert [a["status_code"] for a in delivery["log"]] == [429, 200]
        assert delivery["payload"]["type"] == "webhook.test"
        # Retry-After: 1 (not the 0.2 s schedule) between the two attempts.
        assert second.verified(hook["secret"])["type"] == "webhook.test"
        again = await client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver",
            headers=owner.headers,
        )
        assert again.status_code == 202, again.text
        third = (await receiver.wait_for(3))[2]
    assert third.message_id == first.message_id
    third.verified(hook["secret"])
    failed = await deliveries(client, owner, hook["id"], status="failed")
    assert failed == []


async def test_a_rotated_secret_signs_beside_the_old_one_for_24_hours(
    client: httpx.AsyncClient, owner: Account
) -> None:
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url)
        rotated = await client.post(
            f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=owner.headers
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != hook["secret"]
        await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=owner.headers)
        (request,) = await receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    request.verified(new_secret)
    request.verified(hook["secret"])


async def test_bad_receivers_cost_one_attempt_each_and_block_no_one(
    client: httpx.AsyncClient, owner: Account
) -> None:
    big = b"x" * (10 * 1024 * 1024)
    behaviours: dict[str, Any] = {
        "/slow": slow(5),
        "/redirect": lambda _n, _r: (302, {"Location": "http://127.0.0.1:9/elsewhere"}, b""),
        "/error": lambda _n, _r: (500, {}, b"boom"),
        "/huge": lambda _n, _r: (200, {}, big),
    }

    def route(n: int, request: Received) -> tuple[int, dict[str, str], bytes] | None:
        if request.path in behaviours:
            answer: tuple[int, dict[str, str], bytes] = behaviours[request.path](n, request)
            return answer
        return 200, {}, b"fine"

    with receiving(route) as receiver:
        base = receiver.url.removesuffix("/hook")
        bad = [await subscribe(client, owner, base + path) for path in behaviours]
        unreachable = await subscribe(client, owner, "http://127.0.0.1:9/closed")
        good = await subscribe(client, owner, receiver.url)
        namespace = await make_namespace(client, owner, "payments")
        await put_entry(client, owner.headers, namespace, "a", "1")
        # The good receiver hears of it while the slow one still holds its request.
        arrived = await receiver.wait_for(5)
        assert "/hook" in [r.path for r in arrived]
        log = {
            hook["id"]: (await settled(client, owner, hook["id"], 1))[0]
            for hook in [*bad, unreachable, good]
        }
    first = {hook_id: entry["log"][0] for hook_id, entry in log.items()}
    assert first[good["id"]]["status_code"] == 200
    assert first[bad[0]["id"]]["error"].startswith("no answer within")
    assert first[bad[1]["id"]]["status_code"] == 302
    assert first[bad[2]["id"]]["status_code"] == 500 and first[bad[2]["id"]]["response"] == "boom"
    huge = first[bad[3]["id"]]
    assert huge["status_code"] == 200 and len(huge["response"]) == 1024
    assert first[unreachable["id"]]["status_code"] is None and first[unreachable["id"]]["error"]
    assert [r.path for r in receiver.received].count("/redirect") >= 1
    assert "/elsewhere" not in [r.path for r in receiver.received]


async def test_metrics_show_deliveries_and_the_queue(
    client: httpx.AsyncClient, owner: Account
) -> None:
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url)
        await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=owner.headers)
        await receiver.wait_for(1)
        await settled(client, owner, hook["id"], 1)
    text = (await client.get("/metrics")).text
    assert 'konfig_webhook_deliveries_total{outcome="succeeded"} 1.0' in text
    assert "konfig_webhook_queue_depth" in text
    assert "konfig_webhook_oldest_pending_age_seconds" in text


async def test_a_flag_change_is_a_flag_event_beside_the_config_change(
    client: httpx.AsyncClient, owner: Account
) -> None:
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, ["flag.changed"])
        namespace = await make_namespace(client, owner, "payments")
        await put_entry(client, owner.headers, namespace, "plain", "1")
        made = await put_entry(
            client, owner.headers, namespace, "new_checkout", flag, value_type="flag"
        )
        assert made.status_code == 201, made.text
        (request,) = await receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert payload["type"] == "flag.changed"
    assert payload["data"]["flags"] == ["new_checkout"] and payload["data"]["revision"] == 2


async def test_changes_arriving_while_earlier_ones_are_sent_keep_their_order_per_namespace(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """Changes committed while the worker sends earlier ones join the line of their namespace
    (sent from memory); a failure in a line holds back everything behind it until its retry."""

    def slow_and_once_refusing(n: int, _request: Received) -> tuple[int, dict[str, str], bytes]:
        if n == 6:
            return 503, {}, b"busy"
        time.sleep(0.01)  # every attempt takes a moment: later changes come in meanwhile
        return 200, {}, b"ok"

    with receiving(slow_and_once_refusing) as receiver:
        hook = await subscribe(client, owner, receiver.url)
        names = ["payments", "billing"]
        namespaces = [await make_namespace(client, owner, name) for name in names]

        async def write(namespace: str) -> None:  # one after another: each joins a line
            for n in range(12):
                written = await put_entry(client, owner.headers, namespace, f"key{n}", str(n))
                assert written.status_code == 201, written.text

        await asyncio.gather(*(write(namespace) for namespace in namespaces))
        await receiver.wait_for(25)  # one refused, sent again
        await settled(client, owner, hook["id"], 24)
    kept = payloads(receiver.deduplicated(), hook["secret"])
    for name in names:
        told = [p["data"]["new_revision"] for p in kept if p["data"]["namespace"] == name]
        assert told == list(range(1, 13)), (name, told)
    # Nothing was sent twice but the refused one, and what was sent in order stayed in order.
    assert len(receiver.received) == 25
    for name in names:
        sent = [
            p["data"]["new_revision"]
            for p in payloads(receiver.received, hook["secret"])
            if p["data"]["namespace"] == name
        ]
        assert sent == sorted(sent), (name, sent)
