"""Who may see a secret on the read path: viewers and tokens without ``secrets`` get it masked
in every format; a resolved read draws only on namespaces the caller may read."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
import yaml
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.settings import Settings
from tests.conftest import Account, add_user, assert_error
from tests.support.events import Events
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    read,
    read_secrets,
    service_account,
    set_entry,
    waiting,
)

URL = "/api/v1/config/payments/production"
PASSWORD = "s3cr3t p@ss"
MASK = "********"
DAILY = "config.reveal.daily"


async def _payments(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    """payments/production includes shared; a secret there, and one inherited from payments."""
    shared = await make_namespace(client, owner, "shared")
    await set_entry(client, owner, shared, "region", "eu-west-1")
    parent = await make_namespace(client, owner, "payments")
    await set_entry(client, owner, parent, "api_key", "parent-key", is_secret=True)
    production = await make_namespace(client, owner, "payments/production", ["shared"])
    await set_entry(client, owner, production, "currency", "USD")
    await set_entry(client, owner, production, "db_password", PASSWORD, is_secret=True)
    await set_entry(
        client, owner, production, "db", {"user": "app", "pass": "x"}, value_type="json"
    )
    return {"shared": shared, "parent": parent, "production": production}


async def _token(
    client: httpx.AsyncClient, owner: Account, scopes: list[dict[str, Any]]
) -> dict[str, str]:
    account_id = await service_account(client, owner, f"svc-{uuid.uuid4().hex[:8]}")
    created = await make_token(client, owner, scopes, service_account_id=account_id)
    return bearer(created["token"])


EVERYTHING = ("payments", "payments/**", "shared")


async def test_a_viewer_and_a_token_without_secrets_read_them_masked_in_every_format(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await _payments(client, owner)
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    masked_token = await _token(client, owner, [read(p)[0] for p in EVERYTHING])
    secrets_token = await _token(client, owner, read_secrets(*EVERYTHING))
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")

    revealed = await client.get(URL, headers=secrets_token)
    assert revealed.json()["db_password"] == PASSWORD
    assert revealed.json()["api_key"] == "parent-key"
    assert (await client.get(URL, headers=editor.headers)).json() == revealed.json()
    for headers in (viewer.headers, masked_token):
        answer = await client.get(URL, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "api_key": MASK,
            "currency": "USD",
            "db": {"pass": "x", "user": "app"},
            "db_password": MASK,
            "region": "eu-west-1",
        }
        # Cached renderings are kept apart, each under its own ETag.
        assert answer.headers["etag"] != revealed.headers["etag"]
        assert (await client.get(URL, headers=secrets_token)).json()["db_password"] == PASSWORD
        as_yaml = await client.get(URL, headers=headers, params={"format": "yaml"})
        assert yaml.safe_load(as_yaml.text)["db_password"] == MASK
        as_env = await client.get(URL, headers=headers, params={"format": "env"})
        assert "DB_PASSWORD='********'\n" in as_env.text and "API_KEY='********'\n" in as_env.text
        as_properties = await client.get(URL, headers=headers, params={"format": "properties"})
        assert "db_password=********\n" in as_properties.text
        explained = await client.get(URL, headers=headers, params={"explain": "true"})
        keys = explained.json()["keys"]
        assert keys["db_password"]["value"] == MASK and keys["db_password"]["secret"] is True
        assert "secret" not in keys["currency"]
        assert explained.json()["etag"] == answer.headers["etag"]
        for shown in (answer, as_yaml, as_env, as_properties, explained):
            assert PASSWORD not in shown.text and "parent-key" not in shown.text
        # 304 on the masked ETag; the revealed one is another state.
        same = await client.get(URL, headers={**headers, "If-None-Match": answer.headers["etag"]})
        assert same.status_code == 304
    env = await client.get(URL, headers=secrets_token, params={"format": "env"})
    assert "DB_PASSWORD='s3cr3t p@ss'\n" in env.text


async def test_a_long_poll_wakes_masked(client: httpx.AsyncClient, owner: Account) -> None:
    ids = await _payments(client, owner)
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    etag = (await client.get(URL, headers=viewer.headers)).headers["etag"]

    poll = await waiting(
        client,
        client.get(URL, headers={**viewer.headers, "If-None-Match": etag}, params={"wait": 30}),
    )
    assert not poll.done()
    await set_entry(client, owner, ids["production"], "db_password", "rotated", is_secret=True)
    assert not poll.done()  # a rotated secret alone changes nothing a viewer sees
    await set_entry(client, owner, ids["production"], "currency", "EUR")
    answer = await poll
    assert answer.status_code == 200
    # A rotated secret alone changes nothing a viewer sees (the masked ETag stays); the next
    # visible change wakes the poll, with the secret still masked.
    assert answer.headers["etag"] != etag
    assert answer.json()["currency"] == "EUR"
    assert answer.json()["db_password"] == MASK and "rotated" not in answer.text


async def test_the_event_stream_sends_secrets_masked(
    client: httpx.AsyncClient,
    owner: Account,
    served: str,
) -> None:
    ids = await _payments(client, owner)
    masked_token = await _token(client, owner, [read(p)[0] for p in EVERYTHING])
    secrets_token = await _token(client, owner, read_secrets(*EVERYTHING))
    async with httpx.AsyncClient(base_url=served, timeout=20) as http:
        async with (
            http.stream("GET", f"{URL}/events", headers=masked_token) as masked,
            http.stream("GET", f"{URL}/events", headers=secrets_token) as revealed,
        ):
            masked_events, revealed_events = Events(masked), Events(revealed)
            first = await masked_events.next_event()
            assert orjson.loads(first["data"])["config"]["db_password"] == MASK
            etag = (await client.get(URL, headers=masked_token)).headers["etag"]
            assert first["id"] == etag.strip('"')
            shown = await revealed_events.next_event()
            assert orjson.loads(shown["data"])["config"]["db_password"] == PASSWORD
            assert shown["id"] != first["id"]

            await set_entry(
                client, owner, ids["production"], "db_password", "rotated", is_secret=True
            )
            rotated = orjson.loads((await revealed_events.next_event())["data"])["config"]
            assert rotated["db_password"] == "rotated"
            await set_entry(client, owner, ids["production"], "currency", "EUR")
            second = await masked_events.next_event()  # the rotation alone showed it nothing
            assert orjson.loads(second["data"])["config"]["currency"] == "EUR"
            assert orjson.loads(second["data"])["config"]["db_password"] == MASK
            assert "rotated" not in second["data"]


async def test_a_resolved_read_draws_only_on_namespaces_the_token_may_read(
    client: httpx.AsyncClient,
    owner: Account,
    served: str,
) -> None:
    """A token scoped to reports is refused payments/production's values once an admin adds
    payments/production to reports' includes; a path ancestor comes with its namespace."""
    await _payments(client, owner)
    reports = await make_namespace(client, owner, "reports")
    await set_entry(client, owner, reports, "title", "Monthly")
    reports_only = await _token(client, owner, read_secrets("reports"))
    assert (await client.get("/api/v1/config/reports", headers=reports_only)).status_code == 200
    changed = await client.patch(
        f"/api/v1/namespaces/{reports}",
        headers=owner.headers,
        json={"includes": ["payments/production"]},
    )
    assert changed.status_code == 200, changed.text
    for params in ({}, {"format": "env"}, {"explain": "true"}, {"wait": "1"}):
        refused = assert_error(
            await client.get("/api/v1/config/reports", headers=reports_only, params=params),
            403,
            "FORBIDDEN",
        )
        # The farthest layer first: shared, which payments/production includes.
        assert refused["details"] == {"namespace": "shared"}
        assert "shared" in refused["message"] and PASSWORD not in str(refused)
    async with httpx.AsyncClient(base_url=served, timeout=20) as http:
        stream = await http.get("/api/v1/config/reports/events", headers=reports_only)
        assert_error(stream, 403, "FORBIDDEN")

    # An include must be readable itself: payments/production alone is refused shared.
    production_only = await _token(client, owner, read_secrets("payments/production"))
    refused = assert_error(await client.get(URL, headers=production_only), 403, "FORBIDDEN")
    assert refused["details"] == {"namespace": "shared"}
    # A path ancestor is part of the namespace: its values (and, with secrets, its secrets)
    # come with it, though the token may not read payments on its own.
    with_shared = await _token(client, owner, read_secrets("payments/production", "shared"))
    answer = await client.get(URL, headers=with_shared)
    assert answer.status_code == 200, answer.text
    assert answer.json()["api_key"] == "parent-key" and answer.json()["db_password"] == PASSWORD
    alone = await client.get("/api/v1/config/payments", headers=with_shared)
    assert assert_error(alone, 403, "FORBIDDEN")
    # Secrets are shown only where the token may see them: here in no layer.
    masked = await _token(
        client, owner, [{"namespaces": p, "permissions": ["read"]} for p in EVERYTHING]
    )
    answer = await client.get(URL, headers=masked)
    assert answer.status_code == 200, answer.text
    assert answer.json()["db_password"] == MASK and answer.json()["api_key"] == MASK


async def test_reveal_on_the_api_needs_the_secrets_permission(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await _payments(client, owner)
    entry = f"/api/v1/namespaces/{ids['production']}/configs/db_password"
    account_id = await service_account(client, owner, "writer")
    writer = await make_token(
        client,
        owner,
        [{"namespaces": "payments/**", "permissions": ["read", "write"]}],
        service_account_id=account_id,
    )
    refused = assert_error(
        await client.get(entry, headers=bearer(writer["token"]), params={"reveal": "true"}),
        403,
        "FORBIDDEN",
    )
    assert "secrets" in refused["message"]
    masked = await client.get(entry, headers=bearer(writer["token"]))
    assert masked.json()["value"] == MASK
    holder = await _token(client, owner, read_secrets("payments/**"))
    shown = await client.get(entry, headers=holder, params={"reveal": "true"})
    assert shown.status_code == 200 and shown.json()["value"] == PASSWORD


@pytest.mark.parametrize("permission", ["secrets", "write"])
async def test_nobody_mints_a_token_with_a_power_they_lack(
    client: httpx.AsyncClient, owner: Account, permission: str
) -> None:
    await _payments(client, owner)
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    refused = assert_error(
        await client.post(
            "/api/v1/tokens",
            headers=viewer.headers,
            json={
                "name": "mine",
                "scopes": [{"namespaces": "**", "permissions": ["read", permission]}],
            },
        ),
        403,
        "FORBIDDEN",
    )
    assert refused["details"] == {"permission": permission, "namespaces": "**"}
    assert permission in refused["message"]
    # Read only is theirs to have, and reads secrets masked.
    mine = await make_token(client, viewer, read("**"))
    assert (await client.get(URL, headers=bearer(mine["token"]))).json()["db_password"] == MASK


async def test_a_demoted_users_token_stops_revealing(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await _payments(client, owner)
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")
    token = await make_token(client, editor, read_secrets(*EVERYTHING))
    headers = bearer(token["token"])
    assert (await client.get(URL, headers=headers)).json()["db_password"] == PASSWORD
    demoted = await client.patch(
        f"/api/v1/users/{editor.user_id}", headers=owner.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200, demoted.text
    assert (await client.get(URL, headers=headers)).json()["db_password"] == MASK


async def test_secrets_needs_read_beside_it(client: httpx.AsyncClient, owner: Account) -> None:
    answer = await client.post(
        "/api/v1/tokens",
        headers=owner.headers,
        json={"name": "odd", "scopes": [{"namespaces": "**", "permissions": ["secrets"]}]},
    )
    assert "read" in assert_error(answer, 422, "VALIDATION_ERROR")["message"]


async def _audit(client: httpx.AsyncClient, owner: Account, action: str) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/audit", headers=owner.headers, params={"action": action})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


async def test_reads_of_secrets_are_audited_in_aggregate(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    """N reads that show secrets make one first-read event and one daily count of N, written
    when the process flushes (here: as each replica stops), never a row per request."""
    await _payments(client, owner)
    account_id = await service_account(client, owner, "payments-api")
    created = await make_token(
        client, owner, read_secrets(*EVERYTHING), service_account_id=account_id
    )
    token = bearer(created["token"])
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    for reads in (3, 2):  # two replicas, one after the other, add to the same day's row
        replica_app = create_app(settings.model_copy(update={"token_usage_flush_seconds": 3600}))
        async with LifespanManager(replica_app):
            transport = httpx.ASGITransport(app=replica_app)
            async with httpx.AsyncClient(transport=transport, base_url="http://r.test") as replica:
                etag = ""
                for _ in range(reads):
                    answer = await replica.get(URL, headers=token, params={"format": "env"})
                    assert PASSWORD in answer.text
                    etag = answer.headers["etag"]
                # Nothing shown, nothing counted: a 304, and a viewer's masked reads.
                unchanged = await replica.get(
                    URL, headers={**token, "If-None-Match": etag}, params={"format": "env"}
                )
                assert unchanged.status_code == 304
                for _ in range(2):
                    assert (await replica.get(URL, headers=viewer.headers)).status_code == 200
                # Not written yet: what earlier replicas flushed, no more.
                counts = [e["summary"]["count"] for e in await _audit(client, owner, DAILY)]
                assert counts == ([] if reads == 3 else [3])
    first = await _audit(client, owner, "config.reveal.first")
    assert len(first) == 1
    assert first[0]["actor"] == f"token:{created['id']}"
    assert first[0]["namespace"] == "payments/production"
    assert first[0]["summary"]["keys"] == ["api_key", "db_password"]
    daily = await _audit(client, owner, DAILY)
    assert len(daily) == 1
    assert daily[0]["summary"]["count"] == 5
    assert daily[0]["target"] == daily[0]["created_at"][:10]
    assert daily[0]["actor"] == f"token:{created['id']}"
    everything = (await client.get("/api/v1/audit", headers=owner.headers)).text
    assert PASSWORD not in everything and "parent-key" not in everything


async def test_tokens_and_service_accounts_are_audited_without_their_secret(
    client: httpx.AsyncClient, owner: Account
) -> None:
    account_id = await service_account(client, owner, "payments-api")
    created = await make_token(
        client, owner, read_secrets("payments/**"), service_account_id=account_id, name="api"
    )
    revoked = await client.delete(f"/api/v1/tokens/{created['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    gone = await client.delete(f"/api/v1/service-accounts/{account_id}", headers=owner.headers)
    assert gone.status_code == 204
    for action, target in (
        ("service_account.create", "payments-api"),
        ("token.create", "api"),
        ("token.revoke", "api"),
        ("service_account.delete", "payments-api"),
    ):
        found = await _audit(client, owner, action)
        assert len(found) == 1, action
        assert found[0]["target"] == target
        assert found[0]["actor"] == f"user:{owner.user_id}"
    made = (await _audit(client, owner, "token.create"))[0]["summary"]
    assert made["id"] == created["id"]
    assert made["owner"] == f"service_account:{account_id}"
    assert made["scopes"] == read_secrets("payments/**")
    everything = (await client.get("/api/v1/audit", headers=owner.headers)).text
    assert created["token"] not in everything and created["hint"] not in everything


async def test_a_token_reveals_only_where_its_scope_grants_secrets(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await _payments(client, owner)
    await set_entry(client, owner, ids["shared"], "shared_key", "shared-secret", is_secret=True)
    token = await _token(client, owner, [*read_secrets("payments", "payments/**"), *read("shared")])
    api = "/api/v1/namespaces/{}"
    shown = await client.get(
        api.format(ids["production"]) + "/configs/db_password?reveal=true", headers=token
    )
    assert shown.json()["value"] == PASSWORD
    for path in (
        "/configs/shared_key?reveal=true",
        "/configs?reveal=true",
        "/configs/shared_key/history?reveal=true",
        "/revisions/1?reveal=true",
        "/export?format=yaml&reveal=true",
        "/document?reveal=true",
    ):
        refused = await client.get(api.format(ids["shared"]) + path, headers=token)
        body = assert_error(refused, 403, "FORBIDDEN")
        assert body["details"] == {"namespace": "shared", "permission": "secrets"}
        assert "shared-secret" not in refused.text
    masked = await client.get(api.format(ids["shared"]) + "/configs/shared_key", headers=token)
    assert masked.json()["value"] == MASK
