"""Backups through HTTP: take one, wreck the tenant, restore it exactly; refuse bad files."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from konfig.app import create_app
from konfig.backups.format import sign
from konfig.revisions.models import EntryVersion, Revision
from konfig.revisions.writer import write_policy
from tests.conftest import Account, Backend, add_user, assert_error, backstage, make_settings
from tests.support.backups import (
    SECRET,
    SEED,
    backups_dir,
    content,
    restore,
    seed,
    take_backup,
    wreck,
)


async def revision_rows(app: Any, namespace_id: str) -> list[Revision]:
    async with backstage(app) as session:
        query = (
            select(Revision)
            .where(Revision.namespace_id == uuid.UUID(namespace_id))
            .order_by(Revision.revision)
        )
        return list((await session.execute(query)).scalars())


async def test_a_wrecked_tenant_is_restored_exactly_with_history_kept(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ids = await seed(client, owner)
    before = await content(client, owner)
    backup = await take_backup(client, owner)
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{3}Z", backup["id"])
    assert backup["namespace_count"] == 3 and backup["entry_count"] == 8
    assert backup["valid"] is True and backup["trigger"] == "manual"

    await wreck(client, owner, ids)
    wrecked = await content(client, owner)
    assert wrecked != before
    payments_revision = (await revision_rows(app, ids["payments/production"]))[-1].revision

    restored = await restore(client, owner, backup["id"])
    assert restored.status_code == 200, restored.text
    assert SECRET not in restored.text and "leaked" not in restored.text
    by_name = {ns["name"]: ns for ns in restored.json()["namespaces"]}
    assert by_name["shared"]["created"] is True and by_name["shared"]["revision"] == 1
    assert by_name["payments/production"]["revision"] == payments_revision + 1
    assert {c["key"] for c in by_name["payments/production"]["added"]} == {"flags", "debug"}
    assert [c["key"] for c in by_name["payments/production"]["removed"]] == ["junk"]
    assert [c["key"] for c in by_name["empty"]["removed"]] == ["stray"]

    assert await content(client, owner) == before

    # History is kept: the restore is one more revision on top of the wreckage.
    revisions = await revision_rows(app, ids["payments/production"])
    assert [r.revision for r in revisions] == list(range(1, payments_revision + 2))
    assert revisions[-1].message == f"restored from backup {backup['id']}"
    assert len(revisions[-1].keys) == 6  # 2 re-added, 3 changed back, 1 removed
    async with backstage(app) as session:
        versions = await session.scalar(
            select(func.count()).where(
                EntryVersion.namespace_id == uuid.UUID(ids["payments/production"]),
                EntryVersion.key == "app_name",
            )
        )
    assert versions == 3  # created, wrecked, restored

    # Restoring again changes nothing and writes no revision.
    again = await restore(client, owner, backup["id"])
    assert all(ns["revision"] is None for ns in again.json()["namespaces"])
    assert all(
        ns["unchanged"] == len(SEED[ns["name"]]["entries"]) for ns in again.json()["namespaces"]
    )


async def test_a_dry_run_shows_the_diff_masked_and_changes_nothing(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ids = await seed(client, owner)
    backup = await take_backup(client, owner)
    await wreck(client, owner, ids)
    wrecked = await content(client, owner)
    revisions = len(await revision_rows(app, ids["payments/production"]))

    dry = await restore(client, owner, backup["id"], dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert SECRET not in dry.text and "leaked" not in dry.text
    by_name = {ns["name"]: ns for ns in dry.json()["namespaces"]}
    payments = by_name["payments/production"]
    assert payments["revision"] is None
    assert payments["description"] == {"before": "oops", "after": "Payments, production"}
    assert payments["includes"] == {"before": [], "after": ["shared"]}
    changed = {c["key"]: c for c in payments["changed"]}
    assert set(changed) == {"app_name", "db_password", "max_connections"}
    assert changed["db_password"]["fields"] == ["value"]
    assert changed["db_password"]["before"]["value"] == "********"
    assert changed["db_password"]["after"]["value"] == "********"
    assert changed["app_name"]["before"]["value"] == "Wrecked"
    assert changed["app_name"]["after"]["value"] == "Payments"
    assert changed["max_connections"]["fields"] == ["description"]
    assert by_name["shared"] == {
        **by_name["shared"],
        "created": True,
        "namespace_id": None,
        "unchanged": 0,
    }
    assert len(by_name["shared"]["added"]) == 2

    assert await content(client, owner) == wrecked
    assert len(await revision_rows(app, ids["payments/production"])) == revisions

    revealed = await restore(client, owner, backup["id"], dry_run=True, reveal=True)
    assert SECRET in revealed.text and "leaked" in revealed.text


async def test_restoring_some_namespaces_leaves_the_others(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids = await seed(client, owner)
    before = await content(client, owner)
    backup = await take_backup(client, owner)
    await wreck(client, owner, ids)
    wrecked = await content(client, owner)

    # payments/production includes shared, which is gone and not selected.
    refused = await restore(client, owner, backup["id"], namespaces=["payments/production"])
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert "shared" in error["message"] and error["details"]["missing"] == ["shared"]
    unknown = await restore(client, owner, backup["id"], namespaces=["nope"])
    assert assert_error(unknown, 422, "VALIDATION_ERROR")["details"]["missing"] == ["nope"]
    assert await content(client, owner) == wrecked

    done = await restore(client, owner, backup["id"], namespaces=["payments/production", "shared"])
    assert done.status_code == 200, done.text
    assert [ns["name"] for ns in done.json()["namespaces"]] == ["payments/production", "shared"]
    now = await content(client, owner)
    assert now["payments/production"] == before["payments/production"]
    assert now["shared"] == before["shared"]
    assert now["empty"] == wrecked["empty"]


async def test_listing_reading_and_downloading(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    await seed(client, owner)
    first = await take_backup(client, owner)
    second = await take_backup(client, owner)
    listed = await client.get("/api/v1/backups", headers=owner.headers)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [i["id"] for i in items] == [second["id"], first["id"]]
    assert all(i["size_bytes"] > 0 and i["entry_count"] == 8 for i in items)
    assert all(i["namespace_count"] == 3 and i["created_at"] for i in items)

    page = await client.get("/api/v1/backups", headers=owner.headers, params={"limit": 1})
    assert [i["id"] for i in page.json()["items"]] == [second["id"]]
    rest = await client.get(
        "/api/v1/backups",
        headers=owner.headers,
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
    )
    assert [i["id"] for i in rest.json()["items"]] == [first["id"]]
    assert rest.json()["next_cursor"] is None

    detail = await client.get(f"/api/v1/backups/{first['id']}", headers=owner.headers)
    assert detail.status_code == 200
    assert [ns["name"] for ns in detail.json()["namespaces"]] == [
        "empty",
        "payments/production",
        "shared",
    ]

    path = backups_dir(app) / f"{first['id']}.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    downloaded = await client.get(f"/api/v1/backups/{first['id']}/download", headers=owner.headers)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"].startswith("application/yaml")
    assert downloaded.content == path.read_bytes()
    assert SECRET.encode() not in downloaded.content and b"Payments\n" not in downloaded.content
    document = yaml.safe_load(downloaded.content)
    assert document["format"] == "konfig-backup/1" and document["tenant"]["name"] == "acme"
    assert document["checksum"]["algorithm"] == "hmac-sha256"
    assert document["checksum"]["key_id"] in document["key_ids"]
    entry = document["namespaces"][1]["entries"][0]
    assert set(entry) == {
        "key",
        "value_type",
        "validation_schema",
        "description",
        "is_secret",
        "version",
        "ciphertext",
    }
    base64.b64decode(entry["ciphertext"], validate=True)

    missing = await client.get("/api/v1/backups/20000101T000000.000Z", headers=owner.headers)
    assert_error(missing, 404, "NOT_FOUND")
    bad = await client.get("/api/v1/backups/..%2F..%2Fsecret_key", headers=owner.headers)
    assert bad.status_code in (404, 422)
    assert (await client.get("/api/v1/backups/not-an-id", headers=owner.headers)).status_code == 422


def _replace_file(app: Any, backup_id: str, content: bytes) -> str:
    """Store ``content`` as a new backup next to ``backup_id``; answers the new id."""
    new_id = backup_id[:-4] + f"{(int(backup_id[-4:-1]) + 500) % 1000:03d}Z"
    backups_dir(app).mkdir(parents=True, exist_ok=True)
    (backups_dir(app) / f"{new_id}.yaml").write_bytes(content)
    return new_id


TEMPLATE = {
    "keys": [
        {"key": "debug", "value_type": "boolean", "required": True},
        {"key": "region_name", "description": "Where it runs", "default": "eu"},
    ]
}


async def template_of(client: httpx.AsyncClient, owner: Account, ns: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/namespaces/{ns}/template", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_templates_are_backed_up_and_restored_before_the_entries(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ids = await seed(client, owner)
    payments = (
        await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "payments"})
    ).json()["id"]
    declared = await client.put(
        f"/api/v1/namespaces/{payments}/template", headers=owner.headers, json=TEMPLATE
    )
    assert declared.status_code == 200, declared.text
    stored = (await template_of(client, owner, payments))["template"]
    backup = await take_backup(client, owner)
    document = yaml.safe_load((backups_dir(app) / f"{backup['id']}.yaml").read_bytes())
    in_file = {ns["name"]: ns["template"] for ns in document["namespaces"]}
    assert in_file["payments"] == stored and in_file["shared"] is None

    # The template dropped, an environment no longer keeps to it, and its namespace goes.
    production = f"/api/v1/namespaces/{ids['payments/production']}/configs/debug"
    dropped = await client.delete(f"/api/v1/namespaces/{payments}/template", headers=owner.headers)
    assert dropped.status_code == 200, dropped.text
    loose = await client.put(
        production, headers=owner.headers, json={"value": "yes", "value_type": "string"}
    )
    assert loose.status_code == 200, loose.text
    gone = await client.delete(f"/api/v1/namespaces/{payments}", headers=owner.headers)
    assert gone.status_code == 204, gone.text

    dry = await restore(client, owner, backup["id"], dry_run=True)
    by_name = {ns["name"]: ns for ns in dry.json()["namespaces"]}
    assert by_name["payments"]["created"] is True
    assert by_name["payments"]["template"] == {"before": None, "after": stored}
    assert by_name["payments/production"]["template"] is None
    assert (
        await client.get(
            f"/api/v1/namespaces/{ids['payments/production']}/template", headers=owner.headers
        )
    ).json()["governed_by"] is None

    # Restored first, the template checks the entries written back (a boolean again: it
    # passes), and governs its environments from then on.
    done = await restore(client, owner, backup["id"])
    assert done.status_code == 200, done.text
    payments = {ns["name"]: ns for ns in done.json()["namespaces"]}["payments"]["namespace_id"]
    assert (await template_of(client, owner, payments))["template"] == stored
    governed = await template_of(client, owner, ids["payments/production"])
    assert governed["governed_by"] == "payments"
    refused = await client.put(
        production, headers=owner.headers, json={"value": "yes", "value_type": "string"}
    )
    assert "the template of payments" in assert_error(refused, 422, "VALIDATION_ERROR")["message"]
    again = await restore(client, owner, backup["id"], dry_run=True)
    assert all(ns["template"] is None for ns in again.json()["namespaces"])


def _resigned(app: Any, raw: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """The backup ``raw`` with its body edited and signed again with the instance's key."""
    body = raw[: raw.rindex(b"\nchecksum:\n") + 1]
    signed, _ = sign(edit(body), write_policy(app.state.settings).keyring)
    return signed


async def test_a_backup_from_before_templates_restores_and_leaves_templates_alone(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ids = await seed(client, owner)
    backup = await take_backup(client, owner)
    raw = (backups_dir(app) / f"{backup['id']}.yaml").read_bytes()
    older = _resigned(app, raw, lambda body: body.replace(b"  template: null\n", b""))
    assert b"template" not in older
    older_id = _replace_file(app, backup["id"], older)
    # Declared after the backup, and changed entries.
    declared = await client.put(
        f"/api/v1/namespaces/{ids['shared']}/template", headers=owner.headers, json=TEMPLATE
    )
    assert declared.status_code == 200, declared.text
    region = f"/api/v1/namespaces/{ids['shared']}/configs/region"
    assert (await client.put(region, headers=owner.headers, json={"value": "x"})).is_success

    dry = await restore(client, owner, older_id, dry_run=True)
    assert dry.status_code == 200, dry.text
    assert all(ns["template"] is None for ns in dry.json()["namespaces"])
    done = await restore(client, owner, older_id)
    assert done.status_code == 200, done.text
    assert (await client.get(region, headers=owner.headers)).json()["value"] == "eu-west-1"
    assert (await template_of(client, owner, ids["shared"]))["template"] is not None
    # A backup of today drops it: its namespaces then declared none.
    dropping = await restore(client, owner, backup["id"], dry_run=True)
    shared = {ns["name"]: ns for ns in dropping.json()["namespaces"]}["shared"]
    assert shared["template"]["after"] is None and shared["template"]["before"]["keys"]

    # A template no declaration would accept is refused, and nothing changes.
    bad = _resigned(
        app,
        raw,
        lambda body: body.replace(
            b"  template: null\n",
            b"  template:\n    keys:\n    - key: x\n      value_type: nope\n",
            1,
        ),
    )
    refused = await restore(client, owner, _replace_file(app, older_id, bad))
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert "its template is not valid" in error["message"]
    assert (await template_of(client, owner, ids["shared"]))["template"] is not None


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "edited_value"])
async def test_a_damaged_backup_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, owner: Account, app: Any, damage: str
) -> None:
    ids = await seed(client, owner)
    backup = await take_backup(client, owner)
    raw = (backups_dir(app) / f"{backup['id']}.yaml").read_bytes()
    if damage == "truncated":
        damaged = raw[: len(raw) * 2 // 3]
    elif damage == "flipped_byte":
        position = len(raw) // 2
        damaged = raw[:position] + bytes([raw[position] ^ 0x01]) + raw[position + 1 :]
    else:  # a plausible edit: the description of a namespace
        damaged = raw.replace(b"Payments, production", b"Payments, producti0n")
        assert damaged != raw
    bad_id = _replace_file(app, backup["id"], damaged)
    await wreck(client, owner, ids)
    wrecked = await content(client, owner)

    for body in ({}, {"dry_run": True}):
        refused = await restore(client, owner, bad_id, **body)
        error = assert_error(refused, 422, "VALIDATION_ERROR")
        assert error["details"]["reason"] == (
            "truncated" if damage == "truncated" else "checksum_mismatch"
        )
        assert "nothing was changed" in error["message"]
        assert SECRET not in refused.text
    assert await content(client, owner) == wrecked

    listed = {
        i["id"]: i
        for i in (await client.get("/api/v1/backups", headers=owner.headers)).json()["items"]
    }
    assert listed[bad_id]["valid"] is False and listed[bad_id]["problem"]
    assert listed[backup["id"]]["valid"] is True


async def test_a_backup_from_another_keyring_is_refused(
    client: httpx.AsyncClient, owner: Account, app: Any, backend: Backend, tmp_path: Path
) -> None:
    """Another instance (other keys) on the same database writes a backup; this one refuses it."""
    ids = await seed(client, owner)
    foreign_keys = "foreign:" + base64.b64encode(b"\x07" * 32).decode()
    other = create_app(make_settings(backend.url, tmp_path / "other", encryption_keys=foreign_keys))
    async with LifespanManager(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as foreign:
            made = await foreign.post("/api/v1/backups", headers=owner.headers)
            assert made.status_code == 201, made.text
    foreign_file = backups_dir(other) / f"{made.json()['id']}.yaml"
    foreign_id = _replace_file(app, made.json()["id"], foreign_file.read_bytes())
    await wreck(client, owner, ids)
    wrecked = await content(client, owner)

    refused = await restore(client, owner, foreign_id)
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert error["details"] == {
        "backup_id": foreign_id,
        "reason": "unknown_key",
        "key_id": "foreign",
    }
    assert "another instance" in error["message"]
    assert await content(client, owner) == wrecked


async def test_another_tenants_backups_are_not_found(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account, app: Any
) -> None:
    await seed(client, owner)
    backup = await take_backup(client, owner)
    for method, path in (
        ("GET", f"/api/v1/backups/{backup['id']}"),
        ("GET", f"/api/v1/backups/{backup['id']}/download"),
        ("POST", f"/api/v1/backups/{backup['id']}/restore"),
    ):
        answer = await client.request(method, path, headers=other_tenant.headers)
        assert_error(answer, 404, "NOT_FOUND")
    listed = await client.get("/api/v1/backups", headers=other_tenant.headers)
    assert listed.json() == {"items": [], "next_cursor": None}

    # A file of acme's copied into globex's directory is still not globex's to read.
    theirs = backups_dir(app, "globex")
    theirs.mkdir(parents=True)
    raw = (backups_dir(app) / f"{backup['id']}.yaml").read_bytes()
    (theirs / f"{backup['id']}.yaml").write_bytes(raw)
    copied = await client.get(f"/api/v1/backups/{backup['id']}", headers=other_tenant.headers)
    assert_error(copied, 404, "NOT_FOUND")
    assert (await client.get("/api/v1/backups", headers=other_tenant.headers)).json()["items"] == []
    stolen = await client.post(
        f"/api/v1/backups/{backup['id']}/restore", headers=other_tenant.headers, json={}
    )
    assert_error(stolen, 404, "NOT_FOUND")


async def test_backups_need_an_admin(client: httpx.AsyncClient, owner: Account) -> None:
    await seed(client, owner)
    backup = await take_backup(client, owner)
    for role in ("viewer", "editor"):
        user = await add_user(client, owner, f"{role}@acme.example.com", role)
        for method, path in (
            ("POST", "/api/v1/backups"),
            ("GET", "/api/v1/backups"),
            ("GET", f"/api/v1/backups/{backup['id']}"),
            ("GET", f"/api/v1/backups/{backup['id']}/download"),
            ("POST", f"/api/v1/backups/{backup['id']}/restore"),
        ):
            answer = await client.request(method, path, headers=user.headers)
            assert_error(answer, 403, "FORBIDDEN")
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    assert (await client.post("/api/v1/backups", headers=admin.headers)).status_code == 201
    dry = await restore(client, admin, backup["id"], dry_run=True)
    assert dry.status_code == 200
    assert_error(await client.get("/api/v1/backups"), 401, "UNAUTHENTICATED")


async def test_a_failed_backup_is_an_error_and_is_counted(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    await seed(client, owner)
    backups_dir(app).parent.mkdir(parents=True)
    backups_dir(app).write_text("in the way")  # the tenant's directory cannot be made
    failed = await client.post("/api/v1/backups", headers=owner.headers)
    error = assert_error(failed, 500, "INTERNAL")
    assert "could not be written" in error["message"] and "in the way" not in error["message"]
    status = app.state.backups.status
    assert status.tenants["acme"].failures == 1 and status.failures == 1
    assert status.tenants["acme"].last_success_at is None

    backups_dir(app).unlink()
    made = await take_backup(client, owner)
    assert status.tenants["acme"].last_backup_id == made["id"]
    assert status.tenants["acme"].last_success_at is not None


async def test_values_under_a_key_no_longer_in_the_keyring_are_refused(
    client: httpx.AsyncClient, owner: Account, backend: Backend, tmp_path: Path
) -> None:
    """Mid-rotation: the checksum key is still held, the values' old key was dropped."""
    old = "old:" + base64.b64encode(b"\x01" * 32).decode()
    new = "new:" + base64.b64encode(b"\x02" * 32).decode()
    data_dir = tmp_path / "rotating"

    async def call(keys: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        instance = create_app(make_settings(backend.url, data_dir, encryption_keys=keys))
        # Five apps start and stop in turn: on a loaded CI machine one start (its listener's
        # first connection) took longer than the harness's default 5 s.
        async with LifespanManager(instance, startup_timeout=30, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=instance)
            async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
                return await http.request(method, path, headers=owner.headers, **kwargs)

    made = await call(old, "POST", "/api/v1/namespaces", json={"name": "rotating"})
    ns = made.json()["id"]
    await call(old, "POST", f"/api/v1/namespaces/{ns}/configs", json={"key": "k", "value": "v"})
    backup = (await call(f"{new},{old}", "POST", "/api/v1/backups")).json()
    assert backup["key_ids"] == ["new", "old"]
    refused = await call(new, "POST", f"/api/v1/backups/{backup['id']}/restore", json={})
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert error["details"]["reason"] == "unknown_key" and error["details"]["key_ids"] == ["old"]
    ok = await call(f"{new},{old}", "POST", f"/api/v1/backups/{backup['id']}/restore", json={})
    assert ok.status_code == 200 and ok.json()["namespaces"][0]["unchanged"] == 1


async def test_a_restore_repairs_a_damaged_stored_value(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    from sqlalchemy import update

    from konfig.configs.models import ConfigEntry

    ids = await seed(client, owner)
    before = await content(client, owner)
    backup = await take_backup(client, owner)
    async with backstage(app) as session:
        timeout = await session.scalar(
            select(ConfigEntry.value_ciphertext).where(ConfigEntry.key == "timeout")
        )
        await session.execute(  # region now holds timeout's ciphertext: it fails to decrypt
            update(ConfigEntry).where(ConfigEntry.key == "region").values(value_ciphertext=timeout)
        )
    broken = await client.get(
        f"/api/v1/namespaces/{ids['shared']}/configs/region", headers=owner.headers
    )
    assert_error(broken, 500, "INTERNAL")

    dry = await restore(client, owner, backup["id"], dry_run=True, namespaces=["shared"])
    changed = dry.json()["namespaces"][0]["changed"]
    assert [c["key"] for c in changed] == ["region"]
    assert changed[0]["before"]["value"].startswith("<unreadable")
    done = await restore(client, owner, backup["id"], namespaces=["shared"])
    assert done.status_code == 200, done.text
    assert await content(client, owner) == before


async def test_backups_and_restores_are_audited_and_measured(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ns = (
        await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "audited"})
    ).json()["id"]
    await client.put(
        f"/api/v1/namespaces/{ns}/configs/k", headers=owner.headers, json={"value": "v"}
    )
    taken = await client.post("/api/v1/backups", headers=owner.headers)
    assert taken.status_code == 201, taken.text
    backup_id = taken.json()["id"]
    restored = await client.post(
        f"/api/v1/backups/{backup_id}/restore", headers=owner.headers, json={}
    )
    assert restored.status_code == 200, restored.text
    log = (
        await client.get("/api/v1/audit", headers=owner.headers, params={"action": "backup."})
    ).json()["items"]
    assert [e["action"] for e in log] == ["backup.restore", "backup.create"]
    assert all(e["target"] == backup_id for e in log)
    metrics = (await client.get("/metrics")).text
    age = next(
        line for line in metrics.splitlines() if line.startswith("konfig_backup_age_seconds")
    )
    assert float(age.split()[-1]) >= 0
