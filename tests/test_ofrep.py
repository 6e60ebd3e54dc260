"""Feature flags as entries of value type ``flag``, evaluated over OFREP (single and bulk), on
every backend: validation on write, auth, namespaces, errors, ETags, inheritance, metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from tests.conftest import Account, assert_error
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    put_entry,
    read,
    service_account,
    set_entry,
)

KILL_SWITCH = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "on",
}
CHECKOUT = {
    "state": "ENABLED",
    "variants": {"old": "classic", "new": "streamlined"},
    "defaultVariant": "old",
    "targeting": {
        "if": [
            {"ends_with": [{"var": "email"}, "@acme.test"]},
            "new",
            {"fractional": [["new", 50], ["old", 50]]},
        ]
    },
    "metadata": {"team": "checkout"},
}


async def _token(client: httpx.AsyncClient, owner: Account, pattern: str) -> str:
    account = await service_account(client, owner, f"flags-{uuid.uuid4().hex[:8]}")
    created = await make_token(client, owner, read(pattern), service_account_id=account)
    return str(created["token"])


async def _scene(client: httpx.AsyncClient, owner: Account) -> tuple[str, dict[str, str]]:
    namespace = await make_namespace(client, owner, "shop/production")
    await set_entry(client, owner, namespace, "kill_switch", KILL_SWITCH, value_type="flag")
    await set_entry(client, owner, namespace, "checkout", CHECKOUT, value_type="flag")
    await set_entry(client, owner, namespace, "greeting", "hello")  # not a flag
    token = await _token(client, owner, "shop/production")
    return namespace, bearer(token)


def _flag(client: httpx.AsyncClient, key: str, headers: dict[str, str], context: Any) -> Any:
    return client.post(
        f"/ofrep/v1/evaluate/flags/{key}", headers=headers, json={"context": context}
    )


async def test_flags_are_validated_on_write_naming_the_flag_and_rule(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "shop/production")
    bad = {**CHECKOUT, "targeting": {"fractional": [["new", 10], ["old", 80]]}}
    answer = await put_entry(client, owner.headers, namespace, "checkout", bad, value_type="flag")
    error = assert_error(answer, 422, "VALIDATION_ERROR")
    assert error["details"]["key"] == "checkout" and error["details"]["rule"] == "weights"
    assert "checkout" in error["message"] and "sum to 100" in error["message"]
    unsafe = {**KILL_SWITCH, "targeting": {"eval": "__import__('os')"}}
    answer = await put_entry(client, owner.headers, namespace, "k", unsafe, value_type="flag")
    assert "unknown operator 'eval'" in assert_error(answer, 422, "VALIDATION_ERROR")["message"]
    answer = await client.put(
        f"/api/v1/namespaces/{namespace}/configs/k",
        headers=owner.headers,
        json={"value": KILL_SWITCH, "value_type": "flag", "is_secret": True},
    )
    assert assert_error(answer, 422, "VALIDATION_ERROR")["details"]["rule"] == "is_secret"
    answer = await put_entry(
        client, owner.headers, namespace, "flag_evaluators", {"x": {"eval": 1}}, value_type="json"
    )
    assert assert_error(answer, 422, "VALIDATION_ERROR")["details"]["rule"] == "evaluators"
    # A document write checks flags too.
    document = {
        "entries": [{"key": "f", "value": {**KILL_SWITCH, "state": "ON"}, "value_type": "flag"}]
    }
    answer = await client.put(
        f"/api/v1/namespaces/{namespace}/document", headers=owner.headers, json=document
    )
    assert assert_error(answer, 422, "VALIDATION_ERROR")["details"]["rule"] == "state"


async def test_single_evaluation_reasons_and_both_ways_of_sending_the_token(
    client: httpx.AsyncClient, owner: Account
) -> None:
    _, auth = await _scene(client, owner)
    answer = await _flag(client, "kill_switch", auth, {"targetingKey": "u1"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "key": "kill_switch",
        "value": True,
        "reason": "STATIC",
        "variant": "on",
    }
    api_key = {"X-API-Key": auth["Authorization"].removeprefix("Bearer ")}
    staff = await _flag(client, "checkout", api_key, {"targetingKey": "u1", "email": "a@acme.test"})
    assert staff.json() == {
        "key": "checkout",
        "value": "streamlined",
        "reason": "TARGETING_MATCH",
        "variant": "new",
        "metadata": {"team": "checkout"},
    }
    split = await _flag(client, "checkout", auth, {"targetingKey": "u1", "email": "b@else.test"})
    assert split.json()["reason"] == "SPLIT"


async def test_evaluation_errors_in_the_protocols_shape(
    client: httpx.AsyncClient, owner: Account
) -> None:
    _, auth = await _scene(client, owner)
    missing = await _flag(client, "nope", auth, {"targetingKey": "u"})
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND" and missing.json()["key"] == "nope"
    not_a_flag = await _flag(client, "greeting", auth, {"targetingKey": "u"})
    assert not_a_flag.json()["errorCode"] == "FLAG_NOT_FOUND"
    no_key = await _flag(client, "checkout", auth, {"email": "b@else.test"})
    assert (no_key.status_code, no_key.json()["errorCode"]) == (400, "TARGETING_KEY_MISSING")
    bad_context = await _flag(client, "checkout", auth, ["not", "an", "object"])
    assert (bad_context.status_code, bad_context.json()["errorCode"]) == (400, "INVALID_CONTEXT")
    bad_key = await _flag(client, "checkout", auth, {"targetingKey": 7})
    assert bad_key.json()["errorCode"] == "INVALID_CONTEXT"
    for body in (b"{not json", b"[1]"):
        answer = await client.post("/ofrep/v1/evaluate/flags/checkout", headers=auth, content=body)
        assert (answer.status_code, answer.json()["errorCode"]) == (400, "PARSE_ERROR")
    bulk = await client.post("/ofrep/v1/evaluate/flags", headers=auth, content=b"{nope")
    assert bulk.status_code == 400 and "key" not in bulk.json()
    empty = await client.post("/ofrep/v1/evaluate/flags/kill_switch", headers=auth)
    assert empty.json()["value"] is True  # no body: an empty context
    huge = {"context": {"targetingKey": "u", "blob": "x" * 70_000}}
    too_large = await client.post("/ofrep/v1/evaluate/flags/kill_switch", headers=auth, json=huge)
    assert_error(too_large, 413, "PAYLOAD_TOO_LARGE")


async def test_who_may_evaluate_and_which_namespace(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    await _scene(client, owner)
    context = {"targetingKey": "u"}
    assert_error(await _flag(client, "kill_switch", {}, context), 401, "UNAUTHENTICATED")
    forged = bearer("kfg_" + "x" * 40)
    assert_error(await _flag(client, "kill_switch", forged, context), 401, "UNAUTHENTICATED")
    elsewhere = bearer(await _token(client, owner, "other/*"))
    named = {**elsewhere, "X-Konfig-Namespace": "shop/production"}
    assert_error(await _flag(client, "kill_switch", named, context), 403, "FORBIDDEN")
    wide = bearer(await _token(client, owner, "shop/**"))
    assert_error(await _flag(client, "kill_switch", wide, context), 422, "VALIDATION_ERROR")
    wide_named = {**wide, "X-Konfig-Namespace": "shop/production"}
    assert (await _flag(client, "kill_switch", wide_named, context)).json()["value"] is True
    absent = {**wide, "X-Konfig-Namespace": "shop/staging"}
    assert_error(await _flag(client, "kill_switch", absent, context), 404, "NOT_FOUND")
    # A people's login works too, naming the namespace.
    by_user = {**owner.headers, "X-Konfig-Namespace": "shop/production"}
    assert (await _flag(client, "kill_switch", by_user, context)).status_code == 200
    # Another tenant's token never sees this tenant's flags.
    stranger = {**other_tenant.headers, "X-Konfig-Namespace": "shop/production"}
    assert_error(await _flag(client, "kill_switch", stranger, context), 404, "NOT_FOUND")


async def test_bulk_evaluation_etag_and_change(client: httpx.AsyncClient, owner: Account) -> None:
    namespace, auth = await _scene(client, owner)
    context = {"context": {"targetingKey": "u1", "email": "a@acme.test"}}
    first = await client.post("/ofrep/v1/evaluate/flags", headers=auth, json=context)
    assert first.status_code == 200, first.text
    body = first.json()
    assert [f["key"] for f in body["flags"]] == ["checkout", "kill_switch"]
    assert body["flags"][0]["variant"] == "new"
    assert body["eventStreams"] == [
        {"type": "sse", "endpoint": {"requestUri": "/ofrep/v1/events?namespace=shop/production"}}
    ]
    assert body["metadata"]["namespace"] == "shop/production"
    etag = first.headers["etag"]
    again = await client.post(
        "/ofrep/v1/evaluate/flags", headers={**auth, "If-None-Match": etag}, json=context
    )
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = {"context": {"targetingKey": "u2"}}
    answer = await client.post(
        "/ofrep/v1/evaluate/flags", headers={**auth, "If-None-Match": etag}, json=other
    )
    assert answer.status_code == 200 and answer.headers["etag"] != etag
    assert answer.json()["flags"][0]["reason"] == "SPLIT"
    no_key = await client.post("/ofrep/v1/evaluate/flags", headers=auth, json={"context": {}})
    assert no_key.json()["flags"][0] == {
        "key": "checkout",
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": "this flag splits by targetingKey: the context has none",
    }
    # A change to an unrelated entry keeps the ETag; disabling the flag changes it.
    await set_entry(client, owner, namespace, "greeting", "hi")
    same = await client.post(
        "/ofrep/v1/evaluate/flags", headers={**auth, "If-None-Match": etag}, json=context
    )
    assert same.status_code == 304
    await set_entry(
        client,
        owner,
        namespace,
        "kill_switch",
        {**KILL_SWITCH, "state": "DISABLED"},
        value_type="flag",
    )
    changed = await client.post(
        "/ofrep/v1/evaluate/flags",
        headers={**auth, "If-None-Match": etag},
        params={"flagConfigEtag": "stale-or-newer"},
        json=context,
    )
    assert changed.status_code == 200
    assert changed.json()["flags"][1] == {
        "key": "kill_switch",
        "value": True,
        "reason": "DISABLED",
        "variant": "on",
    }


async def test_flags_inherit_and_share_evaluators(
    client: httpx.AsyncClient, owner: Account
) -> None:
    parent = await make_namespace(client, owner, "shop")
    await set_entry(
        client,
        owner,
        parent,
        "flag_evaluators",
        {"is_staff": {"ends_with": [{"var": "email"}, "@acme.test"]}},
        value_type="json",
    )
    staff_only = {
        **KILL_SWITCH,
        "defaultVariant": "off",
        "targeting": {"if": [{"$ref": "is_staff"}, "on", None]},
    }
    await set_entry(client, owner, parent, "beta", staff_only, value_type="flag")
    await set_entry(client, owner, parent, "plain", "not a flag")
    child = await make_namespace(client, owner, "shop/production")
    await set_entry(client, owner, child, "plain", KILL_SWITCH, value_type="flag")
    auth = bearer(await _token(client, owner, "shop/production"))
    staff = await _flag(client, "beta", auth, {"targetingKey": "u", "email": "x@acme.test"})
    assert (staff.json()["variant"], staff.json()["reason"]) == ("on", "TARGETING_MATCH")
    guest = await _flag(client, "beta", auth, {"targetingKey": "u", "email": "x@b.test"})
    assert (guest.json()["variant"], guest.json()["reason"]) == ("off", "DEFAULT")
    # The child's flag overrides the parent's string of the same key.
    assert (await _flag(client, "plain", auth, {"targetingKey": "u"})).json()["value"] is True
    # The parent's plain string is no flag; its dangling $ref answers PARSE_ERROR when its
    # evaluators go away.
    await client.delete(
        f"/api/v1/namespaces/{parent}/configs/flag_evaluators", headers=owner.headers
    )
    broken = await _flag(client, "beta", auth, {"targetingKey": "u"})
    assert (broken.status_code, broken.json()["errorCode"]) == (400, "PARSE_ERROR")


async def test_evaluations_are_counted_in_metrics(
    client: httpx.AsyncClient, owner: Account
) -> None:
    _, auth = await _scene(client, owner)
    for user in ("a", "b", "c"):
        await _flag(client, "kill_switch", auth, {"targetingKey": user})
    await client.post(
        "/ofrep/v1/evaluate/flags", headers=auth, json={"context": {"targetingKey": "a"}}
    )
    metrics = (await client.get("/metrics")).text
    line = (
        'konfig_flag_evaluations_total{flag="kill_switch",namespace="shop/production",variant="on"}'
    )
    assert f"{line} 4.0" in metrics


async def test_remembered_bulk_answers_still_count_and_clock_rules_are_not_remembered(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace, auth = await _scene(client, owner)
    body = {"context": {"targetingKey": "same-user", "email": "a@acme.test"}}
    first = await client.post("/ofrep/v1/evaluate/flags", headers=auth, json=body)
    again = await client.post("/ofrep/v1/evaluate/flags", headers=auth, json=body)
    assert (first.content, first.headers["etag"]) == (again.content, again.headers["etag"])
    metrics = (await client.get("/metrics")).text
    line = (
        'konfig_flag_evaluations_total{flag="checkout",namespace="shop/production",variant="new"}'
    )
    assert f"{line} 2.0" in metrics
    # A rule reading the clock is evaluated anew for the same body once the clock moves on.
    clock = {
        **KILL_SWITCH,
        "targeting": {"if": [{">": [{"var": "$flagd.timestamp"}, {"var": "until"}]}, "off", "on"]},
    }
    await set_entry(client, owner, namespace, "window", clock, value_type="flag")
    until = int(time.time()) + 1
    same = {"context": {"targetingKey": "u", "until": until}}
    variants = []
    while True:
        answer = await client.post("/ofrep/v1/evaluate/flags", headers=auth, json=same)
        variants.append({f["key"]: f for f in answer.json()["flags"]}["window"]["variant"])
        if variants[-1] == "off" or time.time() > until + 5:
            break
        await asyncio.sleep(0.1)
    assert variants[0] == "on" and variants[-1] == "off"


async def test_fastapi_routes_answer_as_the_fast_path(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    """OFREP's documented routes hand requests to the same handler: with the dispatcher's fast
    paths off, every answer is the same."""
    _, auth = await _scene(client, owner)
    named = {**auth, "X-Konfig-Namespace": "shop/production"}
    requests: list[tuple[str, str, dict[str, str], Any]] = [
        ("POST", "/ofrep/v1/evaluate/flags/checkout", auth, {"context": {"targetingKey": "u"}}),
        ("POST", "/ofrep/v1/evaluate/flags/nope", named, {"context": {}}),
        ("POST", "/ofrep/v1/evaluate/flags", auth, {"context": {"targetingKey": "u"}}),
        ("POST", "/ofrep/v1/evaluate/flags", {}, {"context": {}}),
    ]
    answers = []
    for fast in (True, False):
        app.fast_paths = fast
        try:
            answers.append(
                [
                    (r.status_code, r.content, r.headers.get("etag"))
                    for r in [
                        await client.request(method, url, headers=headers, json=body)
                        for method, url, headers, body in requests
                    ]
                ]
            )
        finally:
            app.fast_paths = True
    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] == [200, 404, 200, 401]
    document = (await client.get("/openapi.json")).json()
    assert {
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/evaluate/flags/{key}",
        "/ofrep/v1/events",
    } <= set(document["paths"])
