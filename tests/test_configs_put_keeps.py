"""A PUT replaces the value and keeps what the body leaves out: no secret is made plain, no
number turned into a string, no schema dropped by omission; the same on the fast write path,
the FastAPI route and the web's in-session writes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account, add_user, assert_error
from tests.support.configs import POOL, SECRET, entry, routed
from tests.support.revisions import API, new_namespace

SETTINGS = ("value_type", "validation_schema", "description", "is_secret")


def settings_of(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in SETTINGS}


async def audit_of(client: httpx.AsyncClient, owner: Account, action: str) -> list[dict[str, Any]]:
    answer = await client.get(f"{API}/audit", headers=owner.headers, params={"action": action})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["fast", "route"])
async def test_a_put_of_the_value_alone_keeps_every_setting(
    client: httpx.AsyncClient, owner: Account, path: str
) -> None:
    ns = await new_namespace(client, owner)
    target = ns if path == "fast" else routed(ns)
    for key, body in (("db_password", SECRET), ("pool", POOL)):
        created = await client.put(entry(ns, key), headers=owner.headers, json=body)
        assert created.status_code == 201, created.text

    rotated = await client.put(
        entry(target, "db_password"), headers=owner.headers, json={"value": "rotated-pw-1"}
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["value"] == "********"
    assert settings_of(rotated.json()) == settings_of(SECRET)
    revealed = await client.get(
        entry(ns, "db_password"), headers=owner.headers, params={"reveal": "true"}
    )
    assert revealed.json()["value"] == "rotated-pw-1"

    resized = await client.put(entry(target, "pool"), headers=owner.headers, json={"value": 20})
    assert resized.status_code == 200, resized.text
    assert resized.json()["value"] == 20
    assert settings_of(resized.json()) == settings_of(POOL)
    # The kept schema still rules the value.
    too_many = await client.put(entry(target, "pool"), headers=owner.headers, json={"value": 5000})
    assert assert_error(too_many, 422, "VALIDATION_ERROR")["details"]["rule"] == "max_value"
    too_short = await client.put(
        entry(target, "db_password"), headers=owner.headers, json={"value": "short"}
    )
    assert_error(too_short, 422, "VALIDATION_ERROR")
    # A new type alone keeps the old type's schema, which the new type refuses.
    retyped = await client.put(
        entry(target, "pool"), headers=owner.headers, json={"value": "x", "value_type": "string"}
    )
    assert "not a rule for string" in assert_error(retyped, 422, "VALIDATION_ERROR")["message"]


@pytest.mark.parametrize("path", ["fast", "route"])
async def test_a_field_sent_changes_it(
    client: httpx.AsyncClient, owner: Account, path: str
) -> None:
    ns = await new_namespace(client, owner)
    target = ns if path == "fast" else routed(ns)
    await client.put(entry(ns, "db_password"), headers=owner.headers, json=SECRET)
    await client.put(entry(ns, "pool"), headers=owner.headers, json=POOL)

    dropped = await client.put(
        entry(target, "pool"),
        headers=owner.headers,
        json={"value": 5000, "validation_schema": None, "description": ""},
    )
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["validation_schema"] is None and dropped.json()["description"] == ""
    assert dropped.json()["value_type"] == "number"

    # Sent with the value it already has: no change of rules, nothing refused or audited.
    same = await client.put(
        entry(target, "db_password"),
        headers=owner.headers,
        json={"value": "rotated-pw-2", "is_secret": True},
    )
    assert same.status_code == 200 and same.json()["is_secret"] is True
    plain = await client.put(
        entry(target, "db_password"),
        headers=owner.headers,
        json={"value": "not-a-secret", "is_secret": False},
    )
    assert plain.status_code == 200 and plain.json()["is_secret"] is False
    assert plain.json()["value"] == "not-a-secret"
    (unsecret,) = await audit_of(client, owner, "config.unsecret")
    assert unsecret["target"] == "db_password"
    (change,) = unsecret["summary"]["changes"]
    assert change["secret"] == "removed"
    assert change["before"] == change["after"] == "********"
    again = await client.put(
        entry(target, "db_password"),
        headers=owner.headers,
        json={"value": "secret-again", "is_secret": True},
    )
    assert again.status_code == 200
    (secret,) = await audit_of(client, owner, "config.secret")
    assert secret["summary"]["changes"][0]["secret"] == "added"
    log = (await client.get(f"{API}/audit", headers=owner.headers)).text
    for value in ("rotated-pw-2", "not-a-secret", "s3cret-Old"):
        assert value not in log


async def test_a_put_on_a_new_key_takes_the_defaults(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    created = await client.put(entry(ns, "name"), headers=owner.headers, json={"value": "api"})
    assert created.status_code == 201
    assert settings_of(created.json()) == {
        "value_type": "string",
        "validation_schema": None,
        "description": "",
        "is_secret": False,
    }
    number = await client.put(entry(ns, "n"), headers=owner.headers, json={"value": 5})
    assert_error(number, 422, "VALIDATION_ERROR")  # a new key is a string unless told


async def test_the_reproduction_a_rotated_secret_stays_secret(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """``konfig set payments/staging db_password=rotated`` by an editor, then a viewer reads."""
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    viewer = await add_user(client, owner, "vi@acme.example.com", "viewer")
    ns = await new_namespace(client, owner, "payments/staging")
    await client.put(entry(ns, "db_password"), headers=owner.headers, json=SECRET)
    rotated = await client.put(
        entry(ns, "db_password"), headers=editor.headers, json={"value": "rotated-pw-9"}
    )
    assert rotated.status_code == 200, rotated.text

    read = await client.get(entry(ns, "db_password"), headers=viewer.headers)
    assert read.json()["is_secret"] is True and read.json()["value"] == "********"
    history = await client.get(f"{entry(ns, 'db_password')}/history", headers=viewer.headers)
    assert [v["value"] for v in history.json()["items"]] == ["********", "********"]
    snapshot = await client.get(f"{API}/namespaces/{ns}/revisions/2", headers=viewer.headers)
    assert snapshot.json()["entries"][0]["value"] == "********"
    diff = await client.get(f"{API}/namespaces/{ns}/diff?from=1&to=2", headers=viewer.headers)
    resolved = await client.get(f"{API}/config/payments/staging", headers=viewer.headers)
    assert resolved.status_code == 200 and resolved.json()["db_password"] == "********"
    env = await client.get(
        f"{API}/config/payments/staging", headers=viewer.headers, params={"format": "env"}
    )
    for answer in (read, history, snapshot, diff, resolved, env):
        assert "rotated-pw-9" not in answer.text
    assert (await audit_of(client, owner, "config.unsecret")) == []
