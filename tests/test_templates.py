"""Templates: a namespace's contract for the environments under it, checked on every write,
reported per environment (conformance), and the defaults of a namespace created from it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, add_user, assert_error
from tests.support.revisions import API, namespace_revision, new_namespace, put_entry

TEMPLATE: dict[str, Any] = {
    "keys": [
        {"key": "db_host", "value_type": "string", "required": True, "description": "DB host"},
        {
            "key": "max_connections",
            "value_type": "number",
            "validation_schema": {"min_value": 1, "max_value": 500, "integer": True},
            "required": True,
            "default": 20,
        },
        {
            "key": "log_level",
            "value_type": "select",
            "validation_schema": {"options": ["info", "debug"]},
            "default": "info",
        },
    ]
}


async def governed(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    ids = {
        n: await new_namespace(client, owner, n)
        for n in ("payments", "payments/staging", "payments/production")
    }
    await put_entry(client, owner, ids["payments/production"], "db_host", "db.prod")
    await put_entry(
        client, owner, ids["payments/production"], "max_connections", 100, value_type="number"
    )
    await put_entry(client, owner, ids["payments/staging"], "max_connections", "lots")
    await put_entry(client, owner, ids["payments/staging"], "extra", "x")
    answer = await client.put(
        f"{API}/namespaces/{ids['payments']}/template", headers=owner.headers, json=TEMPLATE
    )
    assert answer.status_code == 200, answer.text
    return ids


async def test_conformance_lists_missing_wrong_type_and_unknown_keys_per_environment(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    ids = await governed(client, owner)
    report = await client.get(
        f"{API}/namespaces/{ids['payments']}/conformance", headers=owner.headers
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["template"] == "payments"
    by_name = {env["namespace"]: env for env in body["environments"]}
    staging, production = by_name["payments/staging"], by_name["payments/production"]
    assert production["conforms"] and production["missing"] == []
    assert not staging["conforms"]
    assert staging["missing"] == ["db_host"]
    assert staging["wrong_type"] == [
        {"key": "max_connections", "expected": "number", "actual": "string"}
    ]
    assert staging["unknown"] == ["extra"]
    # A governed namespace reports itself against its parent's template.
    own = await client.get(
        f"{API}/namespaces/{ids['payments/staging']}/conformance", headers=owner.headers
    )
    assert [env["namespace"] for env in own.json()["environments"]] == ["payments/staging"]
    read = await client.get(
        f"{API}/namespaces/{ids['payments/staging']}/template", headers=owner.headers
    )
    assert read.json()["governed_by"] == "payments" and read.json()["template"] is None
    elsewhere = await client.get(
        f"{API}/namespaces/{ids['payments']}/conformance", headers=other_tenant.headers
    )
    assert_error(elsewhere, 404, "NOT_FOUND")


async def test_writes_keep_to_the_template_on_every_path(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await governed(client, owner)
    production = ids["payments/production"]
    before = await namespace_revision(client, owner, production)
    wrong = await client.put(
        f"{API}/namespaces/{production}/configs/max_connections",
        headers=owner.headers,
        json={"value": "many", "value_type": "string"},
    )
    assert (
        "the template of payments makes max_connections a number"
        in assert_error(wrong, 422, "VALIDATION_ERROR")["message"]
    )
    too_many = await client.put(
        f"{API}/namespaces/{production}/configs/max_connections",
        headers=owner.headers,
        json={"value": 5000},
    )
    assert "template of payments" in assert_error(too_many, 422, "VALIDATION_ERROR")["message"]
    required = await client.delete(
        f"{API}/namespaces/{production}/configs/db_host", headers=owner.headers
    )
    assert "requires db_host" in assert_error(required, 422, "VALIDATION_ERROR")["message"]
    document = await client.put(
        f"{API}/namespaces/{production}/document",
        headers=owner.headers,
        json={"entries": [{"key": "max_connections", "value": 10, "value_type": "number"}]},
    )
    assert "requires db_host" in assert_error(document, 422, "VALIDATION_ERROR")["message"]
    assert await namespace_revision(client, owner, production) == before
    # Keys the template does not name are free; a value within the rules is written.
    fine = await client.put(
        f"{API}/namespaces/{production}/configs/max_connections",
        headers=owner.headers,
        json={"value": 200},
    )
    assert fine.status_code == 200, fine.text
    # Dropping the template frees the environments.
    dropped = await client.delete(
        f"{API}/namespaces/{ids['payments']}/template", headers=owner.headers
    )
    assert dropped.status_code == 200 and dropped.json()["template"] is None
    gone = await client.delete(
        f"{API}/namespaces/{production}/configs/db_host", headers=owner.headers
    )
    assert gone.status_code == 204


async def test_an_environment_created_from_the_template_starts_with_its_defaults(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await governed(client, owner)
    created = await client.post(
        f"{API}/namespaces/{ids['payments']}/environments",
        headers=owner.headers,
        json={"name": "payments/qa", "description": "QA"},
    )
    assert created.status_code == 201, created.text
    qa = created.json()
    assert qa["revision"] == 1 and qa["entry_count"] == 2
    entries = await client.get(f"{API}/namespaces/{qa['id']}/configs", headers=owner.headers)
    assert {e["key"]: e["value"] for e in entries.json()["items"]} == {
        "max_connections": 20,
        "log_level": "info",
    }
    outside = await client.post(
        f"{API}/namespaces/{ids['payments']}/environments",
        headers=owner.headers,
        json={"name": "orders/qa"},
    )
    assert_error(outside, 422, "VALIDATION_ERROR")
    # A namespace that declares no template has no environments to create: 409, not 404.
    untemplated = await client.post(
        f"{API}/namespaces/{ids['payments/staging']}/environments",
        headers=owner.headers,
        json={"name": "payments/staging/eu"},
    )
    assert_error(untemplated, 409, "CONFLICT")
    # A namespace created the ordinary way under payments is governed too.
    plain = await new_namespace(client, owner, "payments/dev")
    refused = await client.put(
        f"{API}/namespaces/{plain}/configs/max_connections",
        headers=owner.headers,
        json={"value": "x"},
    )
    assert_error(refused, 422, "VALIDATION_ERROR")


async def test_only_admins_declare_templates_and_bad_ones_are_refused(
    client: httpx.AsyncClient, owner: Account
) -> None:
    payments = await new_namespace(client, owner, "payments")
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")
    refused = await client.put(
        f"{API}/namespaces/{payments}/template", headers=editor.headers, json=TEMPLATE
    )
    assert_error(refused, 403, "FORBIDDEN")
    bad_default = {"keys": [{"key": "n", "value_type": "number", "default": "x"}]}
    answer = await client.put(
        f"{API}/namespaces/{payments}/template", headers=owner.headers, json=bad_default
    )
    assert_error(answer, 422, "VALIDATION_ERROR")
    twice = {"keys": [{"key": "n"}, {"key": "n"}]}
    assert_error(
        await client.put(
            f"{API}/namespaces/{payments}/template", headers=owner.headers, json=twice
        ),
        422,
        "VALIDATION_ERROR",
    )
    unknown_type = {"keys": [{"key": "n", "value_type": "decimal"}]}
    assert_error(
        await client.put(
            f"{API}/namespaces/{payments}/template", headers=owner.headers, json=unknown_type
        ),
        422,
        "VALIDATION_ERROR",
    )
