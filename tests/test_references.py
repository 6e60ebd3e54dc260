"""References between values (``${ref:ns:key}``, ``${ref:key}``, defaults, ``$${``): expanded on
the read path in every format with the chain in explain, never stored expanded; refused at
write time on every write path when they cannot resolve; a change to a referenced key wakes
its readers; a secret read through a reference stays masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, add_user, assert_error, make_settings
from tests.support.readpath import make_token, read, waiting
from tests.support.revisions import API, namespace_revision, new_namespace, put_entry
from tests.support.webhooks import receiving, subscribe

CONFIG = f"{API}/config"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    """Loopback webhook receivers are allowed here, explicitly."""
    return make_settings(
        backend.url,
        tmp_path,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_poll_seconds=0.2,
    )


async def scene(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    ids = {
        name: await new_namespace(client, owner, name)
        for name in ("shared/production", "payments", "payments/production")
    }
    await put_entry(client, owner, ids["shared/production"], "db_host", "db.internal")
    await put_entry(client, owner, ids["shared/production"], "db_password", "pw-1", is_secret=True)
    await put_entry(client, owner, ids["payments/production"], "db_name", "pay")
    await put_entry(
        client, owner, ids["payments/production"], "max_connections", 50, value_type="number"
    )
    # A parent's value built from each environment's own keys (with a default: the parent is a
    # namespace services may read too, and its own value must resolve).
    await put_entry(
        client,
        owner,
        ids["payments"],
        "url",
        "postgres://${ref:shared/production:db_host}/${ref:db_name:-app}",
    )
    await put_entry(
        client,
        owner,
        ids["payments/production"],
        "summary",
        "pool=${ref:max_connections} region=${ref:shared/production:region:-eu} lit=$${ref:x}",
    )
    return ids


async def resolved(client: httpx.AsyncClient, account: Account, name: str, **params: Any) -> Any:
    answer = await client.get(f"{CONFIG}/{name}", headers=account.headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer


async def test_references_expand_in_every_format_and_explain_shows_the_chain(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    config = (await resolved(client, owner, "payments/production")).json()
    assert config["url"] == "postgres://db.internal/pay"
    assert config["summary"] == "pool=50 region=eu lit=${ref:x}"
    env = (await resolved(client, owner, "payments/production", format="env")).text
    assert "URL=postgres://db.internal/pay\n" in env
    yaml_text = (await resolved(client, owner, "payments/production", format="yaml")).text
    assert "url: postgres://db.internal/pay" in yaml_text
    props = (await resolved(client, owner, "payments/production", format="properties")).text
    assert "url=postgres\\://db.internal/pay" in props or "url=postgres://db.internal/pay" in props
    explained = (await resolved(client, owner, "payments/production", explain="true")).json()
    assert explained["keys"]["url"]["namespace"] == "payments"
    assert explained["keys"]["url"]["references"] == [
        "shared/production:db_host",
        "payments/production:db_name",
    ]
    # Stored as written, never expanded.
    stored = await client.get(
        f"{API}/namespaces/{ids['payments']}/configs/url", headers=owner.headers
    )
    assert (
        stored.json()["value"] == "postgres://${ref:shared/production:db_host}/${ref:db_name:-app}"
    )


async def test_a_change_to_a_referenced_key_wakes_its_readers(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    first = await resolved(client, owner, "payments/production")
    assert first.json()["url"] == "postgres://db.internal/pay"
    poll = await waiting(
        client,
        client.get(
            f"{CONFIG}/payments/production",
            headers={**owner.headers, "If-None-Match": first.headers["etag"]},
            params={"wait": 30},
        ),
    )
    await put_entry(client, owner, ids["shared/production"], "db_host", "db2.internal")
    woken = await poll
    assert woken.status_code == 200, woken.text
    assert woken.json()["url"] == "postgres://db2.internal/pay"
    # The cache dropped it too: a plain read sees the new value.
    assert (await resolved(client, owner, "payments/production")).json()["url"] == (
        "postgres://db2.internal/pay"
    )


async def test_a_secret_read_through_a_reference_stays_masked(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    await put_entry(
        client,
        owner,
        ids["payments/production"],
        "dsn",
        "postgres://app:${ref:shared/production:db_password}@db",
    )
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    shown = (await resolved(client, viewer, "payments/production")).json()
    assert shown["dsn"] == "********"
    assert "pw-1" not in (await resolved(client, viewer, "payments/production", format="env")).text
    assert (await resolved(client, owner, "payments/production")).json()["dsn"] == (
        "postgres://app:pw-1@db"
    )
    # A token that may read payments/** alone may not read what it references.
    token = await make_token(client, owner, read("payments/**"))
    refused = await client.get(
        f"{CONFIG}/payments/production",
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert_error(refused, 403, "FORBIDDEN")


async def refused_put(
    client: httpx.AsyncClient, account: Account, namespace_id: str, key: str, value: Any
) -> dict[str, Any]:
    answer = await client.put(
        f"{API}/namespaces/{namespace_id}/configs/{key}",
        headers=account.headers,
        json={"value": value},
    )
    return assert_error(answer, 422, "VALIDATION_ERROR")


async def test_writes_that_cannot_resolve_are_refused_naming_the_chain(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    production = ids["payments/production"]
    before = await namespace_revision(client, owner, production)
    missing = await refused_put(client, owner, production, "x", "${ref:shared/production:nope}")
    assert missing["details"]["chain"] == ["payments/production:x", "shared/production:nope"]
    assert "no key nope" in missing["message"]
    gone = await refused_put(client, owner, production, "x", "${ref:no/such:key}")
    assert "there is no namespace no/such" in gone["message"]
    bad = await refused_put(client, owner, production, "x", "${ref:Bad Key}")
    assert bad["details"]["problem"] == "malformed"
    # A cycle through two namespaces.
    await put_entry(
        client, owner, ids["shared/production"], "loop", "${ref:payments/production:db_name:-a}"
    )
    cycle = await refused_put(client, owner, production, "db_name", "${ref:shared/production:loop}")
    assert cycle["details"]["chain"] == [
        "payments/production:db_name",
        "shared/production:loop",
        "payments/production:db_name",
    ]
    assert "cycle" in cycle["message"]
    # A chain of twelve links.
    chain_ns = await new_namespace(client, owner, "chain")
    await put_entry(client, owner, chain_ns, "k0", "end")
    for index in range(1, 12):
        answer = await client.put(
            f"{API}/namespaces/{chain_ns}/configs/k{index}",
            headers=owner.headers,
            json={"value": f"${{ref:k{index - 1}}}"},
        )
        if answer.status_code != 200 and answer.status_code != 201:
            deep = assert_error(answer, 422, "VALIDATION_ERROR")
            assert deep["details"]["problem"] == "depth"
            break
    else:
        raise AssertionError("a chain deeper than ten was accepted")
    # Nothing was written by the refused writes.
    assert await namespace_revision(client, owner, production) == before
    # A PATCH and a document are checked the same way.
    patched = await client.patch(
        f"{API}/namespaces/{production}/configs/db_name",
        headers=owner.headers,
        json={"value": "${ref:missing_key}"},
    )
    assert_error(patched, 422, "VALIDATION_ERROR")
    document = await client.put(
        f"{API}/namespaces/{production}/document",
        headers=owner.headers,
        json={"entries": [{"key": "a", "value": "${ref:b}"}]},
    )
    assert "a:" in assert_error(document, 422, "VALIDATION_ERROR")["message"]
    imported = await client.post(
        f"{API}/namespaces/{production}/import",
        headers={**owner.headers, "Content-Type": "text/plain"},
        params={"format": "env"},
        content=b"A=${ref:nowhere:b}\n",
    )
    assert_error(imported, 422, "VALIDATION_ERROR")
    # Within one document, a key may reference another the same document sets.
    together = await client.put(
        f"{API}/namespaces/{chain_ns}/document",
        headers=owner.headers,
        json={"entries": [{"key": "a", "value": "${ref:b}"}, {"key": "b", "value": "1"}]},
    )
    assert together.status_code == 200, together.text
    assert (await resolved(client, owner, "chain")).json() == {"a": "1", "b": "1"}


async def test_a_rollback_and_a_writer_who_may_not_read_the_target_are_refused(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    production = ids["payments/production"]
    await put_entry(client, owner, ids["shared/production"], "region", "us")
    await put_entry(client, owner, production, "where", "${ref:shared/production:region}")
    with_reference = await namespace_revision(client, owner, production)
    await put_entry(client, owner, production, "where", "static")
    gone = await client.delete(
        f"{API}/namespaces/{ids['shared/production']}/configs/region", headers=owner.headers
    )
    assert gone.status_code == 204
    # (deleting the referenced key is refused while a reference needs it: drop the need first)
    rollback = await client.post(
        f"{API}/namespaces/{production}/rollback",
        headers=owner.headers,
        json={"revision": with_reference},
    )
    assert "no key region" in assert_error(rollback, 422, "VALIDATION_ERROR")["message"]
    editor = await add_user(
        client,
        owner,
        "dev@acme.example.com",
        grants=[{"role": "editor", "namespaces": "payments/**"}],
    )
    refused = await refused_put(client, editor, production, "x", "${ref:shared/production:db_host}")
    assert refused["details"]["problem"] == "forbidden"
    assert "which you may not read" in refused["message"]
    fine = await client.put(
        f"{API}/namespaces/{production}/configs/x",
        headers=editor.headers,
        json={"value": "${ref:db_name}"},
    )
    assert fine.status_code in (200, 201), fine.text


async def test_a_change_to_a_referenced_key_reaches_the_webhooks_of_its_readers(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    with receiving() as receiver:
        hook = await subscribe(client, owner, receiver.url, namespaces="payments/production")
        await put_entry(client, owner, ids["shared/production"], "db_host", "db3.internal")
        await receiver.wait_for(1)
        # Once, as a receiver keeps it: a loaded machine may time out an attempt that arrived,
        # and its retry carries the same webhook-id.
        (received,) = receiver.deduplicated()
    data = received.verified(hook["secret"])["data"]
    assert data["namespace"] == "payments/production"
    assert data["source_namespace"] == "shared/production" and data["inherited"] is True
    assert data["changed_keys"] == ["db_host"]


async def test_a_key_another_namespace_references_cannot_be_deleted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    shared = ids["shared/production"]
    refused = await client.delete(
        f"{API}/namespaces/{shared}/configs/db_host", headers=owner.headers
    )
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert "payments:url references it" in error["message"]
    assert error["details"]["problem"] == "referenced"
    emptied = await client.put(
        f"{API}/namespaces/{shared}/document",
        headers=owner.headers,
        json={"entries": [{"key": "db_password", "value": "********"}]},
    )
    assert_error(emptied, 422, "VALIDATION_ERROR")
    # A key nobody references goes; the config still resolves.
    await put_entry(client, owner, shared, "unused", "x")
    fine = await client.delete(f"{API}/namespaces/{shared}/configs/unused", headers=owner.headers)
    assert fine.status_code == 204
    assert (await resolved(client, owner, "payments/production")).json()["url"] == (
        "postgres://db.internal/pay"
    )


async def test_a_key_that_reaches_a_reference_through_inheritance_cannot_be_deleted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """The referenced key is held by a parent or an included namespace, not by the namespace
    the reference names: deleting it there still breaks the reference, and so does deleting a
    key the namespace's own values read."""
    ids = {
        name: await new_namespace(client, owner, name)
        for name in ("shared", "shared/production", "common", "app", "billing")
    }
    included = await client.post(
        f"{API}/namespaces", headers=owner.headers, json={"name": "svc", "includes": ["common"]}
    )
    assert included.status_code == 201, included.text
    await put_entry(client, owner, ids["shared"], "db_host", "db.internal")
    await put_entry(client, owner, ids["common"], "region", "eu")
    await put_entry(client, owner, ids["app"], "url", "postgres://${ref:shared/production:db_host}")
    await put_entry(client, owner, ids["billing"], "where", "${ref:svc:region}")
    await put_entry(client, owner, ids["shared"], "port", "5432")
    await put_entry(client, owner, ids["shared"], "dsn", "db:${ref:port}")

    def delete(name: str, key: str) -> Any:
        return client.delete(f"{API}/namespaces/{ids[name]}/configs/{key}", headers=owner.headers)

    below = assert_error(await delete("shared", "db_host"), 422, "VALIDATION_ERROR")
    assert "app:url references it" in below["message"]
    assert below["details"]["chain"][-1] == "shared/production:db_host"
    through_include = assert_error(await delete("common", "region"), 422, "VALIDATION_ERROR")
    assert "billing:where references it" in through_include["message"]
    own = assert_error(await delete("shared", "port"), 422, "VALIDATION_ERROR")
    assert "shared:dsn references it" in own["message"]

    # Where the child holds the key itself, the parent's copy may go: the reference still
    # resolves, to the child's value.
    await put_entry(client, owner, ids["shared/production"], "db_host", "prod.internal")
    assert (await delete("shared", "db_host")).status_code == 204
    assert (await resolved(client, owner, "app")).json()["url"] == "postgres://prod.internal"
    still = assert_error(await delete("shared/production", "db_host"), 422, "VALIDATION_ERROR")
    assert "app:url references it" in still["message"]


async def test_a_namespace_others_reference_cannot_be_deleted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await scene(client, owner)
    shared = ids["shared/production"]
    refused = await client.delete(
        f"{API}/namespaces/{shared}", headers=owner.headers, params={"force": "true"}
    )
    error = assert_error(refused, 409, "CONFLICT")
    # payments' url names it without a default, and payments/production inherits that url; the
    # summary's reference has a default, so it needs nothing.
    assert "namespace shared/production: payments:url, payments/production:url" in error["message"]
    assert error["details"]["referrers"] == ["payments", "payments/production"]
    assert [(r["namespace"], r["key"]) for r in error["details"]["references"]] == [
        ("payments", "url"),
        ("payments/production", "url"),
    ]
    assert error["details"]["references"][0]["chain"][-1] == "shared/production:db_host"
    # Refused means nothing went: the namespace and its entries are still there.
    kept = await client.get(f"{API}/namespaces/{shared}", headers=owner.headers)
    assert kept.status_code == 200 and kept.json()["entry_count"] == 2

    # A parent that passes a referenced key down is needed too, though nobody names it.
    parent = await new_namespace(client, owner, "shared")
    await put_entry(client, owner, parent, "db_port", 5432, value_type="number")
    await put_entry(
        client, owner, ids["payments/production"], "port", "${ref:shared/production:db_port}"
    )
    refused = await client.delete(
        f"{API}/namespaces/{parent}", headers=owner.headers, params={"force": "true"}
    )
    error = assert_error(refused, 409, "CONFLICT")
    assert [(r["namespace"], r["key"]) for r in error["details"]["references"]] == [
        ("payments/production", "port")
    ]
    assert "payments/production:port references it" in error["message"]

    # Once the references are gone (or give a default), the namespaces go.
    await put_entry(
        client, owner, ids["payments/production"], "port", "${ref:shared/production:db_port:-5432}"
    )
    gone = await client.delete(
        f"{API}/namespaces/{parent}", headers=owner.headers, params={"force": "true"}
    )
    assert gone.status_code == 204, gone.text
    await put_entry(client, owner, ids["payments"], "url", "postgres://db/${ref:db_name:-app}")
    gone = await client.delete(
        f"{API}/namespaces/{shared}", headers=owner.headers, params={"force": "true"}
    )
    assert gone.status_code == 204, gone.text
    assert (await resolved(client, owner, "payments/production")).json()["port"] == "5432"
