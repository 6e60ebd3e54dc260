"""The resolved config: inheritance, formats, ETags, explain, permissions, tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Account, add_user, assert_error
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    read,
    read_secrets,
    service_account,
    set_entry,
)


async def _payments(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    """shared/production (an include) < payments (the parent) < payments/production."""
    shared = await make_namespace(client, owner, "shared/production")
    await set_entry(client, owner, shared, "log_level", "info")
    await set_entry(client, owner, shared, "timeout", 30, value_type="number")
    await set_entry(client, owner, shared, "region", "eu-west-1")
    parent = await make_namespace(client, owner, "payments")
    await set_entry(client, owner, parent, "timeout", 10, value_type="number")
    await set_entry(client, owner, parent, "currency", "EUR")
    production = await make_namespace(client, owner, "payments/production", ["shared/production"])
    await set_entry(client, owner, production, "currency", "USD")
    await set_entry(client, owner, production, "db_password", "s3cr3t p@ss", is_secret=True)
    await set_entry(
        client,
        owner,
        production,
        "limits",
        {"daily": 1000, "per_tx": [10, 20]},
        value_type="json",
    )
    return {"shared": shared, "parent": parent, "production": production}


async def _reader(
    client: httpx.AsyncClient, owner: Account, pattern: str = "**", *, secrets: bool = True
) -> dict[str, str]:
    """A service account's token reading ``pattern`` (with its secrets unless told not to)."""
    account_id = await service_account(client, owner, f"reader-{uuid.uuid4().hex[:8]}")
    scopes = read_secrets(pattern) if secrets else read(pattern)
    return bearer((await make_token(client, owner, scopes, service_account_id=account_id))["token"])


EXPECTED = {
    "currency": "USD",
    "db_password": "s3cr3t p@ss",
    "limits": {"daily": 1000, "per_tx": [10, 20]},
    "log_level": "info",
    "region": "eu-west-1",
    "timeout": 10,
}


async def test_a_namespace_is_merged_over_its_includes_and_ancestors(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await _payments(client, owner)
    token = await _reader(client, owner)
    answer = await client.get("/api/v1/config/payments/production", headers=token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == EXPECTED
    assert list(answer.json()) == sorted(EXPECTED)
    assert answer.headers["etag"].startswith('"')
    # An editor (a person) reads it as the token does; a viewer reads it with secrets masked,
    # under an ETag of its own.
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")
    as_editor = await client.get("/api/v1/config/payments/production", headers=editor.headers)
    assert as_editor.json() == EXPECTED
    assert as_editor.headers["etag"] == answer.headers["etag"]
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    as_viewer = await client.get("/api/v1/config/payments/production", headers=viewer.headers)
    assert as_viewer.json() == EXPECTED | {"db_password": "********"}
    assert as_viewer.headers["etag"] != answer.headers["etag"]


async def test_explain_names_the_namespace_and_revision_of_each_key(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await _payments(client, owner)
    token = await _reader(client, owner)
    answer = await client.get(
        "/api/v1/config/payments/production", headers=token, params={"explain": "true"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [layer["namespace"] for layer in body["layers"]] == [
        "shared/production",
        "payments",
        "payments/production",
    ]
    keys = body["keys"]
    assert keys["timeout"]["value"] == 10
    assert keys["timeout"]["namespace"] == "payments"
    assert keys["timeout"]["overrides"] == [{"namespace": "shared/production", "revision": 2}]
    assert keys["log_level"] == {
        "value": "info",
        "namespace": "shared/production",
        "revision": 1,
        "overrides": [],
    }
    assert keys["currency"]["namespace"] == "payments/production"
    assert keys["currency"]["revision"] == 1
    assert body["namespace"] == "payments/production" and body["revision"] == 3
    assert (
        body["etag"]
        == (await client.get("/api/v1/config/payments/production", headers=token)).headers["etag"]
    )
    assert answer.headers["etag"] != body["etag"]
    assert ids["production"]


async def test_formats(client: httpx.AsyncClient, owner: Account) -> None:
    await _payments(client, owner)
    token = await _reader(client, owner)
    url = "/api/v1/config/payments/production"

    as_yaml = await client.get(url, headers=token, params={"format": "yaml"})
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == EXPECTED

    as_env = await client.get(url, headers=token, params={"format": "env"})
    assert as_env.headers["content-type"] == "text/plain; charset=utf-8"
    assert as_env.text == (
        "CURRENCY=USD\n"
        "DB_PASSWORD='s3cr3t p@ss'\n"
        'LIMITS=\'{"daily":1000,"per_tx":[10,20]}\'\n'
        "LOG_LEVEL=info\n"
        "REGION=eu-west-1\n"
        "TIMEOUT=10\n"
    )
    as_properties = await client.get(url, headers=token, params={"format": "properties"})
    assert as_properties.text == (
        "currency=USD\n"
        "db_password=s3cr3t p@ss\n"
        "limits.daily=1000\n"
        "limits.per_tx[0]=10\n"
        "limits.per_tx[1]=20\n"
        "log_level=info\n"
        "region=eu-west-1\n"
        "timeout=10\n"
    )
    etags = {
        (await client.get(url, headers=token, params={"format": f})).headers["etag"]
        for f in ("json", "yaml", "env", "properties")
    }
    assert len(etags) == 4
    for params in ({"format": "xml"}, {"explain": "maybe"}, {"format": "env", "explain": "true"}):
        assert_error(await client.get(url, headers=token, params=params), 422, "VALIDATION_ERROR")


async def test_env_and_properties_quote_and_escape(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "edge")
    await set_entry(client, owner, namespace, "db.url", "postgres://u@h:5432/d?x=1&y=2")
    await set_entry(client, owner, namespace, "motd", "it's\nsunny")
    await set_entry(client, owner, namespace, "greeting", " héllo=wörld #1")
    await set_entry(client, owner, namespace, "empty", "")
    await set_entry(client, owner, namespace, "flag", True, value_type="boolean")
    await set_entry(client, owner, namespace, "hosts", ["a", "b c", {}], value_type="json")
    token = await _reader(client, owner, "edge")
    env = await client.get("/api/v1/config/edge", headers=token, params={"format": "env"})
    assert env.text == (
        "DB_URL='postgres://u@h:5432/d?x=1&y=2'\n"
        "EMPTY=\n"
        "FLAG=true\n"
        "GREETING=' héllo=wörld #1'\n"
        'HOSTS=\'["a","b c",{}]\'\n'
        'MOTD="it\'s\\nsunny"\n'
    )
    properties = await client.get(
        "/api/v1/config/edge", headers=token, params={"format": "properties"}
    )
    assert properties.text == (
        "db.url=postgres://u@h:5432/d?x=1&y=2\n"
        "empty=\n"
        "flag=true\n"
        "greeting=\\ h\\u00E9llo=w\\u00F6rld #1\n"
        "hosts[0]=a\n"
        "hosts[1]=b c\n"
        "hosts[2]={}\n"
        "motd=it's\\nsunny\n"
    )
    await set_entry(client, owner, namespace, "db_url", "other")
    clash = await client.get("/api/v1/config/edge", headers=token, params={"format": "env"})
    error = assert_error(clash, 409, "CONFLICT")
    assert set(error["details"]["keys"]) == {"db.url", "db_url"}
    assert (await client.get("/api/v1/config/edge", headers=token)).status_code == 200


async def test_etag_changes_exactly_when_the_resolved_content_changes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await _payments(client, owner)
    unrelated = await make_namespace(client, owner, "orders")
    token = await _reader(client, owner)
    url = "/api/v1/config/payments/production"

    first = await client.get(url, headers=token)
    etag = first.headers["etag"]
    same = await client.get(url, headers={**token, "If-None-Match": etag})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["etag"] == etag
    weak_list = await client.get(url, headers={**token, "If-None-Match": f'"nope", W/{etag}'})
    assert weak_list.status_code == 304

    # Unrelated namespace, or a parent key the namespace overrides: same content, same ETag.
    await set_entry(client, owner, unrelated, "x", "1")
    await set_entry(client, owner, ids["parent"], "currency", "GBP")
    await set_entry(client, owner, ids["shared"], "timeout", 99, value_type="number")
    assert (await client.get(url, headers={**token, "If-None-Match": etag})).status_code == 304

    # The parent changes something inherited: new content, new ETag.
    await set_entry(client, owner, ids["parent"], "timeout", 11, value_type="number")
    changed = await client.get(url, headers={**token, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["timeout"] == 11
    assert changed.headers["etag"] != etag

    # So does the include, for a key nobody overrides; and putting the old value back restores
    # the old ETag: it names the content, not the history.
    await set_entry(client, owner, ids["shared"], "region", "us-east-1")
    after_include = await client.get(url, headers=token)
    assert after_include.json()["region"] == "us-east-1"
    await set_entry(client, owner, ids["shared"], "region", "eu-west-1")
    await set_entry(client, owner, ids["parent"], "timeout", 10, value_type="number")
    assert (await client.get(url, headers=token)).headers["etag"] == etag


async def test_structure_changes_reach_the_resolved_config(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await _payments(client, owner)
    token = await _reader(client, owner, "**")
    url = "/api/v1/config/payments/production"
    assert (await client.get(url, headers=token)).json()["log_level"] == "info"

    # Dropping the include drops its keys.
    patched = await client.patch(
        f"/api/v1/namespaces/{ids['production']}", headers=owner.headers, json={"includes": []}
    )
    assert patched.status_code == 200
    assert "log_level" not in (await client.get(url, headers=token)).json()

    # A new ancestor with includes of its own joins in (its includes below it).
    common = await make_namespace(client, owner, "common")
    await set_entry(client, owner, common, "log_level", "warn")
    deeper = await make_namespace(client, owner, "payments/production/eu")
    await set_entry(client, owner, deeper, "region", "eu-central-1")
    eu = await client.get("/api/v1/config/payments/production/eu", headers=token)
    assert eu.json()["currency"] == "USD" and eu.json()["region"] == "eu-central-1"
    patched = await client.patch(
        f"/api/v1/namespaces/{ids['parent']}", headers=owner.headers, json={"includes": ["common"]}
    )
    assert patched.status_code == 200
    assert (await client.get(url, headers=token)).json()["log_level"] == "warn"
    eu = await client.get("/api/v1/config/payments/production/eu", headers=token)
    assert eu.json()["log_level"] == "warn"

    # A deleted namespace is gone from the read path too.
    deleted = await client.delete(
        f"/api/v1/namespaces/{deeper}", headers=owner.headers, params={"force": "true"}
    )
    assert deleted.status_code == 204
    assert_error(
        await client.get("/api/v1/config/payments/production/eu", headers=token), 404, "NOT_FOUND"
    )


async def test_an_include_cycle_through_a_descendant_terminates(
    client: httpx.AsyncClient, owner: Account
) -> None:
    parent = await make_namespace(client, owner, "app")
    child = await make_namespace(client, owner, "app/dev")
    await set_entry(client, owner, parent, "a", "parent")
    await set_entry(client, owner, child, "a", "child")
    await set_entry(client, owner, child, "b", "child")
    patched = await client.patch(
        f"/api/v1/namespaces/{parent}", headers=owner.headers, json={"includes": ["app/dev"]}
    )
    assert patched.status_code == 200
    token = await _reader(client, owner, "**")
    # app = includes (app/dev, which inherits app: skipped) < app
    assert (await client.get("/api/v1/config/app", headers=token)).json() == {
        "a": "parent",
        "b": "child",
    }
    assert (await client.get("/api/v1/config/app/dev", headers=token)).json() == {
        "a": "child",
        "b": "child",
    }


async def test_permissions_and_errors(client: httpx.AsyncClient, owner: Account) -> None:
    await _payments(client, owner)
    url = "/api/v1/config/payments/production"
    assert_error(await client.get(url), 401, "UNAUTHENTICATED")
    assert_error(
        await client.get(url, headers={"Authorization": "Basic x"}), 401, "UNAUTHENTICATED"
    )
    assert_error(await client.get(url, headers=bearer("not-a-jwt")), 401, "UNAUTHENTICATED")
    orders_only = await _reader(client, owner, "orders/*")
    forbidden = assert_error(await client.get(url, headers=orders_only), 403, "FORBIDDEN")
    assert "s3cr3t" not in str(forbidden)
    # The namespace "payments" is not matched by "payments/*": its own config is out of scope,
    # and so is payments/production's, which inherits from it (and from shared/production).
    payments_children = await _reader(client, owner, "payments/*")
    assert_error(
        await client.get("/api/v1/config/payments", headers=payments_children), 403, "FORBIDDEN"
    )
    inherited = assert_error(await client.get(url, headers=payments_children), 403, "FORBIDDEN")
    assert inherited["details"] == {"namespace": "shared/production"}
    assert "s3cr3t" not in str(inherited) and "info" not in str(inherited)
    assert_error(
        await client.get("/api/v1/config/payments/nothing-here", headers=payments_children),
        404,
        "NOT_FOUND",
    )
    assert_error(
        await client.get("/api/v1/config/Not A Name", headers=owner.headers), 404, "NOT_FOUND"
    )
    assert_error(
        await client.get(url, headers=payments_children, params={"wait": "61"}),
        422,
        "VALIDATION_ERROR",
    )
    head = await client.head(url, headers=await _reader(client, owner))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"]


async def test_another_tenant_gets_404(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    await _payments(client, owner)
    theirs = await make_namespace(client, other_tenant, "billing")
    await set_entry(client, other_tenant, theirs, "k", "v")
    for headers in (other_tenant.headers, await _reader(client, other_tenant, "**")):
        for path in ("payments/production", "payments/production/events"):
            assert_error(
                await client.get(f"/api/v1/config/{path}", headers=headers), 404, "NOT_FOUND"
            )
    assert_error(
        await client.get("/api/v1/config/billing", headers=await _reader(client, owner, "**")),
        404,
        "NOT_FOUND",
    )


async def test_the_read_path_is_documented(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    config = schema["paths"]["/api/v1/config/{name}"]["get"]
    assert {p["name"] for p in config["parameters"]} >= {"name", "format", "explain", "wait"}
    assert "/api/v1/config/{name}/events" in schema["paths"]
    assert "/api/v1/tokens" in schema["paths"] and "/api/v1/service-accounts" in schema["paths"]


@pytest.mark.parametrize("explain", ["true", "false"])
async def test_nested_values_stay_json(
    client: httpx.AsyncClient, owner: Account, explain: str
) -> None:
    namespace = await make_namespace(client, owner, "nested")
    value = {"b": {"z": 1, "a": [True, None, "x"]}, "a": 2}
    await set_entry(client, owner, namespace, "tree", value, value_type="json")
    token = await _reader(client, owner, "nested")
    body = (
        await client.get("/api/v1/config/nested", headers=token, params={"explain": explain})
    ).json()
    tree = body["keys"]["tree"]["value"] if explain == "true" else body["tree"]
    assert tree == value
    assert list(tree) == ["b", "a"]  # the value's own key order is kept


async def test_the_read_path_keeps_request_ids_and_the_error_shape(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "ids")
    await set_entry(client, owner, namespace, "k", "secret-value", is_secret=True)
    token = await _reader(client, owner, "ids")
    given = await client.get("/api/v1/config/ids", headers={**token, "X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/api/v1/config/ids", headers={**token, "X-Request-ID": "bad id!"})
    assert len(made.headers["x-request-id"]) == 32
    refused = await client.get("/api/v1/config/ids")
    assert refused.headers["x-request-id"] and refused.headers["www-authenticate"] == "Bearer"

    async def broken(*_: Any) -> None:
        raise RuntimeError("secret-value leaked?")

    cache = app.state.delivery.cache
    cache.tenants.clear()
    cache.load_many = broken
    failed = await client.get("/api/v1/config/ids", headers={**token, "X-Request-ID": "r-500"})
    error = assert_error(failed, 500, "INTERNAL")
    assert "r-500" in error["message"] and "secret-value" not in failed.text
    assert "Traceback" not in failed.text


async def test_the_documented_routes_answer_the_same(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    """With the dispatcher's fast paths off, FastAPI's documented routes serve it, same
    handler."""
    await _payments(client, owner)
    token = await _reader(client, owner)
    fast = await client.get("/api/v1/config/payments/production", headers=token)
    app.fast_paths = False
    routed = await client.get("/api/v1/config/payments/production", headers=token)
    assert routed.status_code == 200 and routed.json() == fast.json()
    assert routed.headers["etag"] == fast.headers["etag"]
    assert routed.headers["x-request-id"]
    not_modified = await client.get(
        "/api/v1/config/payments/production",
        headers={**token, "If-None-Match": fast.headers["etag"]},
    )
    assert not_modified.status_code == 304
    assert_error(await client.get("/api/v1/config/payments/production"), 401, "UNAUTHENTICATED")
    assert_error(
        await client.get("/api/v1/config/payments/production", headers=token, params={"wait": 99}),
        422,
        "VALIDATION_ERROR",
    )
