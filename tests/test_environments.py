"""Across environments: /compare (raw and resolved, secrets by fingerprint), /compare/copy (one
reviewed revision) and /search (keys, descriptions, non-secret values, within the grants)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, add_user, assert_error
from tests.support.revisions import API, namespace_revision, new_namespace, put_entry


async def environments(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    ids = {
        name: await new_namespace(client, owner, name)
        for name in ("payments", "payments/staging", "payments/production")
    }
    await put_entry(client, owner, ids["payments"], "region", "eu")
    staging, production = ids["payments/staging"], ids["payments/production"]
    await put_entry(client, owner, staging, "max_connections", 10, value_type="number")
    await put_entry(client, owner, production, "max_connections", 50, value_type="number")
    await put_entry(client, owner, staging, "db_host", "db.staging")
    await put_entry(client, owner, production, "db_host", "db.prod", description="primary DB")
    await put_entry(client, owner, staging, "timeout", 30, value_type="number")
    await put_entry(client, owner, production, "timeout", 30, value_type="number")
    await put_entry(client, owner, staging, "api_key", "k-1", is_secret=True)
    await put_entry(client, owner, production, "api_key", "k-2", is_secret=True)
    await put_entry(client, owner, staging, "signing_key", "s3cr3t-shared", is_secret=True)
    await put_entry(client, owner, production, "signing_key", "s3cr3t-shared", is_secret=True)
    await put_entry(client, owner, staging, "debug", True, value_type="boolean")
    return ids


async def compare(
    client: httpx.AsyncClient, account: Account, names: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"{API}/compare", headers=account.headers, params={"namespaces": names, **params}
    )


def rows(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in body["keys"]}


async def test_compare_marks_same_different_and_missing_without_revealing_secrets(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await environments(client, owner)
    answer = await compare(client, owner, "payments/staging,payments/production")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [ns["name"] for ns in body["namespaces"]] == ["payments/staging", "payments/production"]
    found = rows(body)
    assert set(found) == {
        "api_key",
        "db_host",
        "debug",
        "max_connections",
        "signing_key",
        "timeout",
    }
    assert found["timeout"]["status"] == "same"
    assert found["max_connections"]["status"] == "different"
    assert [c["value"] for c in found["max_connections"]["cells"]] == [10, 50]
    assert found["debug"]["status"] == "missing"
    assert [c["present"] for c in found["debug"]["cells"]] == [True, False]
    assert body["summary"] == {"same": 2, "different": 3, "missing": 1}
    # Secrets: masked, compared by a fingerprint that says same / different, never the value.
    api_key, signing_key = found["api_key"]["cells"], found["signing_key"]["cells"]
    assert found["api_key"]["status"] == "different"
    assert found["signing_key"]["status"] == "same"
    assert all(c["value"] == "********" and c["secret"] for c in api_key + signing_key)
    assert api_key[0]["fingerprint"] != api_key[1]["fingerprint"]
    assert signing_key[0]["fingerprint"] == signing_key[1]["fingerprint"]
    assert "k-1" not in answer.text and "k-2" not in answer.text and "s3cr3t" not in answer.text
    # Only the differences; resolved: inherited keys appear with their source.
    only = await compare(client, owner, "payments/staging,payments/production", differences=True)
    assert set(rows(only.json())) == {"api_key", "db_host", "debug", "max_connections"}
    merged = await compare(client, owner, "payments/staging,payments/production", resolved=True)
    assert merged.status_code == 200, merged.text
    region = rows(merged.json())["region"]
    assert region["status"] == "same"
    assert [c["source"] for c in region["cells"]] == ["payments", "payments"]


async def test_compare_refuses_bad_names_unknown_namespaces_and_unreadable_ones(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    await environments(client, owner)
    assert_error(await compare(client, owner, "payments/staging"), 422, "VALIDATION_ERROR")
    assert_error(await compare(client, owner, "a,a"), 422, "VALIDATION_ERROR")
    eleven = ",".join(f"n{i}" for i in range(11))
    assert_error(await compare(client, owner, eleven), 422, "VALIDATION_ERROR")
    missing = assert_error(await compare(client, owner, "payments/staging,nope"), 404, "NOT_FOUND")
    assert missing["details"] == {"namespaces": ["nope"]}
    # Another tenant's namespaces do not exist for this one.
    other = await compare(client, other_tenant, "payments/staging,payments/production")
    assert_error(other, 404, "NOT_FOUND")
    # A person who reads staging only cannot compare it with production.
    staging_only = await add_user(
        client,
        owner,
        "dev@acme.example.com",
        grants=[{"role": "editor", "namespaces": "payments/staging"}],
    )
    refused = await compare(client, staging_only, "payments/staging,payments/production")
    assert_error(refused, 403, "FORBIDDEN")


async def test_copy_reviews_then_writes_several_values_as_one_revision(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await environments(client, owner)
    production = ids["payments/production"]
    before = await namespace_revision(client, owner, production)
    request = {
        "source": "payments/staging",
        "target": "payments/production",
        "keys": ["max_connections", "debug", "api_key"],
        "expected_revision": before,
    }
    review = await client.post(
        f"{API}/compare/copy", headers=owner.headers, params={"dry_run": True}, json=request
    )
    assert review.status_code == 200, review.text
    diff = review.json()["diff"]
    assert not review.json()["committed"]
    assert [item["key"] for item in diff["added"]] == ["debug"]
    assert {item["key"] for item in diff["changed"]} == {"api_key", "max_connections"}
    assert "k-1" not in review.text  # the secret is copied, never shown
    assert await namespace_revision(client, owner, production) == before
    done = await client.post(f"{API}/compare/copy", headers=owner.headers, json=request)
    assert done.status_code == 200, done.text
    assert done.json()["committed"] and done.json()["revision"] == before + 1
    after = rows((await compare(client, owner, "payments/staging,payments/production")).json())
    for key in ("max_connections", "debug", "api_key"):
        assert after[key]["status"] == "same", key
    # Reviewed against a revision that has moved on: nothing is written.
    stale = await client.post(f"{API}/compare/copy", headers=owner.headers, json=request)
    assert_error(stale, 412, "PRECONDITION_FAILED")
    assert await namespace_revision(client, owner, production) == before + 1


async def test_copy_refuses_what_it_cannot_do_whole(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await environments(client, owner)
    copy = {"source": "payments/staging", "target": "payments/production"}
    absent = await client.post(
        f"{API}/compare/copy", headers=owner.headers, json={**copy, "keys": ["region", "debug"]}
    )
    assert assert_error(absent, 422, "VALIDATION_ERROR")["details"]["missing"] == ["region"]
    # The target's rules hold: a string copied onto a number key is refused, naming the key.
    await put_entry(client, owner, ids["payments/staging"], "timeout", "30s", value_type="string")
    mistyped = await client.post(
        f"{API}/compare/copy", headers=owner.headers, json={**copy, "keys": ["timeout", "debug"]}
    )
    assert "timeout" in assert_error(mistyped, 422, "VALIDATION_ERROR")["message"]
    unknown = await client.post(
        f"{API}/compare/copy", headers=owner.headers, json={**copy, "keys": ["debug"], "x": 1}
    )
    assert_error(unknown, 422, "VALIDATION_ERROR")
    # A viewer of both reads them but writes neither.
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    refused = await client.post(
        f"{API}/compare/copy", headers=viewer.headers, json={**copy, "keys": ["debug"]}
    )
    assert_error(refused, 403, "FORBIDDEN")
    rows_now = rows((await compare(client, owner, "payments/staging,payments/production")).json())
    assert rows_now["debug"]["status"] == "missing"


async def search(client: httpx.AsyncClient, account: Account, q: str, **params: Any) -> Any:
    answer = await client.get(f"{API}/search", headers=account.headers, params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_search_finds_keys_descriptions_and_values_where_the_caller_may_read(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    ids = await environments(client, owner)
    found = await search(client, owner, "MAX_conn")
    assert sorted(hit["namespace"] for hit in found["items"]) == [
        "payments/production",
        "payments/staging",
    ]
    hit = found["items"][0]
    assert hit["matched"] == ["key"]
    assert hit["link"] == f"/ui/namespaces/{hit['namespace_id']}/entries/max_connections"
    assert found["total"] == 2 and found["namespaces"] == 2
    by_description = await search(client, owner, "primary")
    assert [(h["key"], h["matched"]) for h in by_description["items"]] == [
        ("db_host", ["description"])
    ]
    by_value = await search(client, owner, "db.prod")
    assert [h["namespace"] for h in by_value["items"]] == ["payments/production"]
    # Secret values are never searched (nor shown); their keys are.
    assert (await search(client, owner, "k-1"))["items"] == []
    assert [h["value"] for h in (await search(client, owner, "api_key"))["items"]] == [
        "********",
        "********",
    ]
    # A change shows at once; limit pages the answer.
    await put_entry(client, owner, ids["payments"], "max_connections", 5, value_type="number")
    assert (await search(client, owner, "max_connections", limit=1))["total"] == 3
    # Grants bound it; another tenant sees nothing of this one.
    staging_only = await add_user(
        client,
        owner,
        "dev@acme.example.com",
        grants=[{"role": "viewer", "namespaces": "payments/staging"}],
    )
    mine = await search(client, staging_only, "max_connections")
    assert [h["namespace"] for h in mine["items"]] == ["payments/staging"]
    assert (await search(client, other_tenant, "max_connections"))["items"] == []
    empty = await client.get(f"{API}/search", headers=owner.headers, params={"q": "  "})
    assert_error(empty, 422, "VALIDATION_ERROR")
    missing = await client.get(f"{API}/search", headers=owner.headers)
    assert_error(missing, 422, "VALIDATION_ERROR")
