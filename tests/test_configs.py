"""Config entries: the spec's requests, types, ETags, secrets, limits, isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from konfig.configs.models import ConfigEntry
from konfig.db.session import across_tenants, bind_tenant, open_session
from tests.conftest import Account, add_user, assert_error
from tests.support.namespaces import make_ns

SPEC_EXAMPLES: list[dict[str, Any]] = [
    {
        "key": "app_name",
        "value": "My Application",
        "value_type": "string",
        "validation_schema": {"min_length": 3, "max_length": 50, "pattern": "^[a-zA-Z0-9 ]+$"},
    },
    {
        "key": "max_connections",
        "value": 100,
        "value_type": "number",
        "validation_schema": {"min_value": 1, "max_value": 1000},
    },
    {
        "key": "log_level",
        "value": "INFO",
        "value_type": "select",
        "validation_schema": {"options": ["DEBUG", "INFO", "WARNING", "ERROR"]},
    },
    {
        "key": "feature_flags",
        "value": {"new_ui": True, "beta_features": False},
        "value_type": "json",
    },
]


@pytest.fixture
async def ns(client: httpx.AsyncClient, owner: Account) -> str:
    return str((await make_ns(client, owner, "production"))["id"])


def configs(ns: str, key: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configs" + (f"/{key}" if key else "")


async def test_secret_entry_as_in_the_original_spec(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    created = await client.post(
        configs(ns),
        headers=owner.headers,
        json={
            "key": "database_url",
            "value": "postgresql://localhost:5432/mydb",
            "value_type": "string",
            "description": "Database connection URL",
            "is_secret": True,
        },
    )
    assert created.status_code == 201
    assert created.json()["value"] == "********"
    assert created.headers["etag"] == '"1"'
    read = await client.get(configs(ns, "database_url"), headers=owner.headers)
    assert read.status_code == 200
    body = read.json()
    assert body["value"] == "********"
    assert body["is_secret"] is True
    assert body["version"] == 1
    assert body["updated_by"] == f"user:{owner.user_id}"
    revealed = await client.get(
        configs(ns, "database_url"), headers=owner.headers, params={"reveal": "true"}
    )
    assert revealed.json()["value"] == "postgresql://localhost:5432/mydb"
    listed = await client.get(configs(ns), headers=owner.headers)
    assert "postgresql://" not in listed.text


async def test_the_four_typed_examples_validate_as_described(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    for example in SPEC_EXAMPLES:
        answer = await client.post(configs(ns), headers=owner.headers, json=example)
        assert answer.status_code == 201, answer.text
        assert answer.json()["value"] == example["value"]
    broken = {
        "app_name": ("My-App!", "pattern"),
        "max_connections": (1001, "max_value"),
        "log_level": ("TRACE", "options"),
    }
    for example in SPEC_EXAMPLES[:3]:
        value, rule = broken[example["key"]]
        body = {k: v for k, v in example.items() if k != "key"} | {"value": value}
        answer = await client.put(configs(ns, example["key"]), headers=owner.headers, json=body)
        error = assert_error(answer, 422, "VALIDATION_ERROR")
        assert example["key"] in error["message"] and rule in error["message"]
        assert error["details"]["key"] == example["key"] and error["details"]["rule"] == rule
    short = await client.patch(configs(ns, "app_name"), headers=owner.headers, json={"value": "ab"})
    assert assert_error(short, 422, "VALIDATION_ERROR")["details"]["rule"] == "min_length"
    not_json = await client.patch(
        configs(ns, "feature_flags"), headers=owner.headers, json={"value": None}
    )
    assert_error(not_json, 422, "VALIDATION_ERROR")
    for example in SPEC_EXAMPLES:  # every rejected write left the stored value alone
        read = await client.get(configs(ns, example["key"]), headers=owner.headers)
        assert read.json()["value"] == example["value"]
        assert read.json()["version"] == 1


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ({"value": "yes", "value_type": "boolean"}, "type"),
        ({"value": 1, "value_type": "boolean"}, "type"),
        ({"value": True, "value_type": "number"}, "type"),
        ({"value": "5", "value_type": "number"}, "type"),
        ({"value": 2.5, "value_type": "number", "validation_schema": {"integer": True}}, "integer"),
        ({"value": 5, "value_type": "string"}, "type"),
        (
            {
                "value": {"port": "x"},
                "value_type": "json",
                "validation_schema": {
                    "json_schema": {"type": "object", "properties": {"port": {"type": "integer"}}}
                },
            },
            "json_schema",
        ),
        (
            {"value": "x", "value_type": "string", "validation_schema": {"min_value": 1}},
            "min_value",
        ),
        ({"value": "x", "value_type": "string", "validation_schema": {"flavour": 1}}, "flavour"),
        (
            {"value": True, "value_type": "boolean", "validation_schema": {"options": [True]}},
            "options",
        ),
        ({"value": "a", "value_type": "select", "validation_schema": {"options": []}}, "options"),
        (
            {"value": "a", "value_type": "select", "validation_schema": {"options": ["a", "a"]}},
            "options",
        ),
        (
            {"value": "a", "value_type": "string", "validation_schema": {"pattern": "(?<=a)b"}},
            "pattern",
        ),
        (
            {
                "value": "a",
                "value_type": "string",
                "validation_schema": {"min_length": 5, "max_length": 2},
            },
            "min_length",
        ),
        (
            {"value": 1, "value_type": "number", "validation_schema": {"min_value": "1"}},
            "min_value",
        ),
        (
            {
                "value": {},
                "value_type": "json",
                "validation_schema": {"json_schema": {"type": "nope"}},
            },
            "json_schema",
        ),
        ({"value": "a", "value_type": "yaml"}, "value_type"),
        ({"value": "a", "value_type": "string", "validation_schema": {"pattern": 5}}, "pattern"),
        (
            {"value": "a", "value_type": "string", "validation_schema": {"pattern": "a" * 2001}},
            "pattern",
        ),
        (
            {
                "value": 5,
                "value_type": "number",
                "validation_schema": {"min_value": 9, "max_value": 1},
            },
            "min_value",
        ),
        ({"value": 5, "value_type": "number", "validation_schema": {"integer": "yes"}}, "integer"),
        (
            {"value": "a", "value_type": "select", "validation_schema": {"options": ["a", ["b"]]}},
            "options",
        ),
        (
            {"value": {}, "value_type": "json", "validation_schema": {"json_schema": 5}},
            "json_schema",
        ),
        (
            {
                "value": {},
                "value_type": "json",
                "validation_schema": {"json_schema": {"patternProperties": {"(?<=a)b": {}}}},
            },
            "json_schema",
        ),
        ({"value": None, "value_type": "number"}, "required"),
    ],
)
async def test_each_rule_is_enforced_and_named(
    client: httpx.AsyncClient, owner: Account, ns: str, entry: dict[str, Any], rule: str
) -> None:
    answer = await client.post(configs(ns), headers=owner.headers, json={"key": "k", **entry})
    error = assert_error(answer, 422, "VALIDATION_ERROR")
    assert error["details"]["rule"] == rule
    assert error["message"].startswith("k: ")
    assert_error(await client.get(configs(ns, "k"), headers=owner.headers), 404, "NOT_FOUND")


async def test_booleans_integers_and_json_schema_are_accepted(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    entries: list[dict[str, Any]] = [
        {"key": "enabled", "value": False, "value_type": "boolean"},
        {
            "key": "workers",
            "value": 8,
            "value_type": "number",
            "validation_schema": {"integer": True, "min_value": 1},
        },
        {"key": "ratio", "value": 0.25, "value_type": "number"},
        {
            "key": "limits",
            "value": {"rps": 10, "burst": [1, 2]},
            "value_type": "json",
            "validation_schema": {
                "json_schema": {
                    "type": "object",
                    "required": ["rps"],
                    "properties": {"rps": {"type": "integer"}},
                }
            },
        },
        {
            "key": "mode",
            "value": 2,
            "value_type": "select",
            "validation_schema": {"options": [1, 2, "auto"]},
        },
    ]
    for entry in entries:
        answer = await client.post(configs(ns), headers=owner.headers, json=entry)
        assert answer.status_code == 201, answer.text
        assert answer.json()["value"] == entry["value"]


async def test_json_schema_patterns_check_only_what_they_apply_to(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    """A pattern checks strings and patternProperties objects; other values pass them by."""
    schema = {
        "json_schema": {
            "items": {"pattern": "^[a-z]+$", "patternProperties": {"^x_": {"type": "integer"}}}
        }
    }
    body = {"value_type": "json", "validation_schema": schema}
    accepted = await client.post(
        configs(ns),
        headers=owner.headers,
        json={**body, "key": "mixed", "value": ["abc", 7, {"x_port": 1, "name": "n"}, None]},
    )
    assert accepted.status_code == 201, accepted.text
    for key, value in (("upper", ["ABC"]), ("typed", [{"x_port": "one"}])):
        answer = await client.post(
            configs(ns), headers=owner.headers, json={**body, "key": key, "value": value}
        )
        assert assert_error(answer, 422, "VALIDATION_ERROR")["details"]["rule"] == "json_schema"


async def test_changing_the_schema_rechecks_the_current_value(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    await client.post(configs(ns), headers=owner.headers, json=SPEC_EXAMPLES[1])
    tighter = await client.patch(
        configs(ns, "max_connections"),
        headers=owner.headers,
        json={"validation_schema": {"max_value": 50}},
    )
    error = assert_error(tighter, 422, "VALIDATION_ERROR")
    assert error["details"]["rule"] == "max_value"
    retyped = await client.patch(
        configs(ns, "max_connections"), headers=owner.headers, json={"value_type": "boolean"}
    )
    assert_error(retyped, 422, "VALIDATION_ERROR")
    both = await client.patch(
        configs(ns, "max_connections"),
        headers=owner.headers,
        json={"value": 40, "validation_schema": {"max_value": 50}, "description": "pool size"},
    )
    assert both.status_code == 200
    assert both.json()["version"] == 2 and both.json()["description"] == "pool size"


async def test_etags_and_if_match_prevent_lost_updates(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    created = await client.post(
        configs(ns), headers=owner.headers, json={"key": "timeout", "value": "5s"}
    )
    first = created.headers["etag"]
    updated = await client.put(
        configs(ns, "timeout"), headers={**owner.headers, "If-Match": first}, json={"value": "10s"}
    )
    assert updated.status_code == 200 and updated.headers["etag"] == '"2"'
    for method, body in (("PUT", {"value": "15s"}), ("PATCH", {"value": "15s"}), ("DELETE", None)):
        stale = await client.request(
            method, configs(ns, "timeout"), headers={**owner.headers, "If-Match": first}, json=body
        )
        assert_error(stale, 412, "PRECONDITION_FAILED")
    read = await client.get(configs(ns, "timeout"), headers=owner.headers)
    assert read.json()["value"] == "10s" and read.headers["etag"] == '"2"'
    gone = await client.delete(configs(ns, "timeout"), headers={**owner.headers, "If-Match": '"2"'})
    assert gone.status_code == 204
    assert_error(await client.get(configs(ns, "timeout"), headers=owner.headers), 404, "NOT_FOUND")


async def test_create_never_overwrites(client: httpx.AsyncClient, owner: Account, ns: str) -> None:
    await client.post(configs(ns), headers=owner.headers, json={"key": "region", "value": "eu"})
    again = await client.post(
        configs(ns), headers=owner.headers, json={"key": "region", "value": "us"}
    )
    assert_error(again, 409, "CONFLICT")
    guarded = await client.put(
        configs(ns, "region"), headers={**owner.headers, "If-None-Match": "*"}, json={"value": "us"}
    )
    assert_error(guarded, 412, "PRECONDITION_FAILED")
    created = await client.put(
        configs(ns, "zone"), headers={**owner.headers, "If-None-Match": "*"}, json={"value": "a"}
    )
    assert created.status_code == 201
    assert (await client.get(configs(ns, "region"), headers=owner.headers)).json()["value"] == "eu"


async def test_roles_on_entries(client: httpx.AsyncClient, owner: Account, ns: str) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    viewer = await add_user(client, owner, "vi@acme.example.com", "viewer")
    made = await client.post(
        configs(ns),
        headers=editor.headers,
        json={"key": "token", "value": "s3cr3t-v4lue", "is_secret": True},
    )
    assert made.status_code == 201
    assert_error(
        await client.post(configs(ns), headers=viewer.headers, json={"key": "x", "value": "y"}),
        403,
        "FORBIDDEN",
    )
    assert_error(
        await client.put(configs(ns, "token"), headers=viewer.headers, json={"value": "y"}),
        403,
        "FORBIDDEN",
    )
    assert_error(
        await client.delete(configs(ns, "token"), headers=viewer.headers), 403, "FORBIDDEN"
    )
    masked = await client.get(configs(ns, "token"), headers=viewer.headers)
    assert masked.json()["value"] == "********"
    refused = await client.get(
        configs(ns, "token"), headers=viewer.headers, params={"reveal": "true"}
    )
    assert_error(refused, 403, "FORBIDDEN")
    assert "s3cr3t-v4lue" not in refused.text
    shown = await client.get(
        configs(ns, "token"), headers=editor.headers, params={"reveal": "true"}
    )
    assert shown.json()["value"] == "s3cr3t-v4lue"


async def test_secrets_stay_out_of_error_messages(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    answer = await client.post(
        configs(ns),
        headers=owner.headers,
        json={
            "key": "api_key",
            "value": {"token": "hunter2-supersecret"},
            "value_type": "json",
            "is_secret": True,
            "validation_schema": {
                "json_schema": {"type": "object", "properties": {"token": {"type": "integer"}}}
            },
        },
    )
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert "hunter2" not in answer.text
    choice = await client.post(
        configs(ns),
        headers=owner.headers,
        json={
            "key": "mode",
            "value": "hunter2-supersecret",
            "value_type": "select",
            "is_secret": True,
            "validation_schema": {"options": ["a"]},
        },
    )
    assert_error(choice, 422, "VALIDATION_ERROR")
    assert "hunter2" not in choice.text


async def test_limits_are_enforced_and_named(
    client: httpx.AsyncClient, owner: Account, ns: str, settings: Any
) -> None:
    huge = "x" * (settings.max_value_bytes + 1)
    too_big = await client.post(
        configs(ns), headers=owner.headers, json={"key": "blob", "value": huge}
    )
    error = assert_error(too_big, 413, "PAYLOAD_TOO_LARGE")
    assert str(settings.max_value_bytes) in error["message"]
    deep: Any = 1
    for _ in range(settings.max_json_depth + 1):
        deep = [deep]
    nested = await client.post(
        configs(ns),
        headers=owner.headers,
        json={"key": "deep", "value": deep, "value_type": "json"},
    )
    assert assert_error(nested, 422, "VALIDATION_ERROR")["details"]["rule"] == "max_json_depth"
    bad_key = await client.post(
        configs(ns), headers=owner.headers, json={"key": "9lives", "value": "x"}
    )
    assert_error(bad_key, 422, "VALIDATION_ERROR")


async def test_keys_per_namespace_limit(
    client: httpx.AsyncClient, owner: Account, ns: str, app: Any
) -> None:
    from dataclasses import replace

    state = app.state
    policy = replace(state.write_policy, max_keys=2)
    state.write_policy = state.entry_writer.policy = policy
    for key in ("a", "b"):
        assert (
            await client.post(configs(ns), headers=owner.headers, json={"key": key, "value": "v"})
        ).status_code == 201
    third = await client.post(configs(ns), headers=owner.headers, json={"key": "c", "value": "v"})
    error = assert_error(third, 422, "VALIDATION_ERROR")
    assert error["details"]["rule"] == "max_keys_per_namespace" and "2 keys" in error["message"]


async def test_a_hostile_pattern_is_answered_promptly(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    # With a backtracking engine this takes longer than the age of the universe.
    answer = await client.post(
        configs(ns),
        headers=owner.headers,
        json={
            "key": "evil",
            "value": "a" * 30_000 + "b",
            "validation_schema": {"pattern": "(a+)+$"},
        },
    )
    assert assert_error(answer, 422, "VALIDATION_ERROR")["details"]["rule"] == "pattern"
    nested = await client.post(
        configs(ns),
        headers=owner.headers,
        json={
            "key": "evil_json",
            "value": {"s": "a" * 30_000 + "b"},
            "value_type": "json",
            "validation_schema": {"json_schema": {"properties": {"s": {"pattern": "^(a|a)+$"}}}},
        },
    )
    assert assert_error(nested, 422, "VALIDATION_ERROR")["details"]["rule"] == "json_schema"


async def test_no_plaintext_value_in_the_database(
    client: httpx.AsyncClient, owner: Account, ns: str, app: Any
) -> None:
    values = {"plain_marker": "ZEBRA-PLAIN-7731", "secret_marker": "ZEBRA-SECRET-9917"}
    for key, value in values.items():
        answer = await client.post(
            configs(ns),
            headers=owner.headers,
            json={"key": key, "value": value, "is_secret": key.startswith("secret")},
        )
        assert answer.status_code == 201
    await client.put(
        configs(ns, "plain_marker"), headers=owner.headers, json={"value": "ZEBRA-PLAIN-8842"}
    )
    dump = await _dump_database(app)
    for marker in ("ZEBRA-PLAIN-7731", "ZEBRA-SECRET-9917", "ZEBRA-PLAIN-8842", "ZEBRA"):
        assert marker.encode() not in dump


async def _dump_database(app: Any) -> bytes:
    """Every cell of every table, as bytes."""
    from sqlalchemy import text

    from konfig.models import metadata

    chunks: list[bytes] = []
    async with app.state.sessionmaker() as session, across_tenants(session, "test: every row"):
        for table in metadata.sorted_tables:
            for row in (await session.execute(text(f"SELECT * FROM {table.name}"))).all():
                for cell in row:
                    chunks.append(cell if isinstance(cell, bytes) else str(cell).encode())
    return b"\n".join(chunks)


async def test_a_ciphertext_moved_to_another_row_fails_to_decrypt(
    client: httpx.AsyncClient, owner: Account, ns: str, app: Any
) -> None:
    for key, value in (("alpha", "first-value"), ("beta", "second-value")):
        await client.post(configs(ns), headers=owner.headers, json={"key": key, "value": value})
    # A writer from the start, as the app's own are: a transaction that reads and then writes
    # fails at once on SQLite when the app's background writers committed in between.
    async with await open_session(app.state.sessionmaker, write=True) as session:
        await bind_tenant(session, uuid.UUID(owner.tenant_id))
        rows = {
            e.key: e.value_ciphertext
            for e in (await session.execute(select(ConfigEntry))).scalars()
        }
        for key, other in (("alpha", "beta"), ("beta", "alpha")):
            await session.execute(
                update(ConfigEntry)
                .where(ConfigEntry.key == key)
                .values(value_ciphertext=rows[other])
            )
        await session.commit()
    for key in ("alpha", "beta"):
        answer = await client.get(configs(ns, key), headers=owner.headers)
        error = assert_error(answer, 500, "INTERNAL")
        assert "integrity" in error["message"] and key in error["message"]
        assert "first-value" not in answer.text and "second-value" not in answer.text


async def test_another_tenants_entries_are_not_found(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    theirs = str((await make_ns(client, other_tenant, "payments"))["id"])
    await client.post(
        configs(theirs), headers=other_tenant.headers, json={"key": "k", "value": "v"}
    )
    for method, path, body in (
        ("GET", configs(theirs), None),
        ("POST", configs(theirs), {"key": "x", "value": "y"}),
        ("GET", configs(theirs, "k"), None),
        ("PUT", configs(theirs, "k"), {"value": "mine"}),
        ("PATCH", configs(theirs, "k"), {"value": "mine"}),
        ("DELETE", configs(theirs, "k"), None),
    ):
        answer = await client.request(method, path, headers=owner.headers, json=body)
        assert_error(answer, 404, "NOT_FOUND")
    still = await client.get(configs(theirs, "k"), headers=other_tenant.headers)
    assert still.json()["value"] == "v"


async def test_entries_list_is_paginated_by_key(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    for key in ("c", "a", "b", "e", "d"):
        await client.post(configs(ns), headers=owner.headers, json={"key": key, "value": key})
    page = (await client.get(configs(ns), headers=owner.headers, params={"limit": 3})).json()
    assert [e["key"] for e in page["items"]] == ["a", "b", "c"]
    rest = (
        await client.get(configs(ns), headers=owner.headers, params={"cursor": page["next_cursor"]})
    ).json()
    assert [e["key"] for e in rest["items"]] == ["d", "e"] and rest["next_cursor"] is None


async def test_integers_beyond_64_bits_are_refused(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    answer = await client.put(
        configs(ns, "huge"), headers=owner.headers, json={"value": 2**70, "value_type": "number"}
    )
    assert assert_error(answer, 422, "VALIDATION_ERROR")["details"]["rule"] == "type"


async def test_keys_that_differ_in_case_are_two_entries(
    client: httpx.AsyncClient, owner: Account, ns: str
) -> None:
    """On every backend: MariaDB compares text case-insensitively unless told otherwise."""
    for key, value in (("db_host", "lower"), ("DB_HOST", "upper")):
        created = await client.post(
            f"/api/v1/namespaces/{ns}/configs",
            headers=owner.headers,
            json={"key": key, "value": value},
        )
        assert created.status_code == 201, created.text
    for key, value in (("db_host", "lower"), ("DB_HOST", "upper")):
        read = await client.get(f"/api/v1/namespaces/{ns}/configs/{key}", headers=owner.headers)
        assert (read.json()["key"], read.json()["value"]) == (key, value)
    assert_error(
        await client.get(f"/api/v1/namespaces/{ns}/configs/Db_Host", headers=owner.headers),
        404,
        "NOT_FOUND",
    )
