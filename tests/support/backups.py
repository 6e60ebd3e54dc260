"""A tenant worth backing up: seeded, read back whole, wrecked, backed up and restored over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Account

SECRET = "s3cr3t-ZEBRA-4471"


SEED: dict[str, dict[str, Any]] = {
    "shared": {
        "description": "Shared by every service",
        "includes": [],
        "entries": [
            {"key": "region", "value": "eu-west-1"},
            {"key": "timeout", "value": 30, "value_type": "number"},
        ],
    },
    "payments/production": {
        "description": "Payments, production",
        "includes": ["shared"],
        "entries": [
            {
                "key": "app_name",
                "value": "Payments",
                "validation_schema": {"min_length": 3, "max_length": 50},
                "description": "Shown in the UI",
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
                "validation_schema": {"options": ["DEBUG", "INFO", "ERROR"]},
            },
            {"key": "flags", "value": {"new_ui": True, "beta": [1, 2.5]}, "value_type": "json"},
            {"key": "debug", "value": False, "value_type": "boolean"},
            {"key": "db_password", "value": SECRET, "is_secret": True},
        ],
    },
    "empty": {"description": "Nothing in it yet", "includes": [], "entries": []},
}


def backups_dir(app: Any, tenant: str = "acme") -> Path:
    return Path(app.state.settings.data_dir) / "backups" / tenant


async def seed(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    """The SEED namespaces and entries; answers namespace ids by name."""
    ids: dict[str, str] = {}
    for name, spec in SEED.items():
        made = await client.post(
            "/api/v1/namespaces",
            headers=owner.headers,
            json={"name": name, "description": spec["description"], "includes": spec["includes"]},
        )
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
        for entry in spec["entries"]:
            answer = await client.post(
                f"/api/v1/namespaces/{ids[name]}/configs", headers=owner.headers, json=entry
            )
            assert answer.status_code == 201, answer.text
    return ids


async def content(client: httpx.AsyncClient, owner: Account) -> dict[str, Any]:
    """Every namespace of the tenant with its entries, secrets revealed."""
    listed = await client.get("/api/v1/namespaces", headers=owner.headers)
    found: dict[str, Any] = {}
    for ns in listed.json()["items"]:
        entries = await client.get(
            f"/api/v1/namespaces/{ns['id']}/configs",
            headers=owner.headers,
            params={"reveal": "true"},
        )
        found[ns["name"]] = {
            "description": ns["description"],
            "includes": ns["includes"],
            "entries": {
                e["key"]: {
                    k: e[k]
                    for k in (
                        "value",
                        "value_type",
                        "validation_schema",
                        "description",
                        "is_secret",
                    )
                }
                for e in entries.json()["items"]
            },
        }
    return found


async def take_backup(client: httpx.AsyncClient, owner: Account) -> dict[str, Any]:
    made = await client.post("/api/v1/backups", headers=owner.headers)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def restore(
    client: httpx.AsyncClient, owner: Account, backup_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/backups/{backup_id}/restore", headers=owner.headers, json=body
    )


async def wreck(client: httpx.AsyncClient, owner: Account, ids: dict[str, str]) -> None:
    """Change, delete and add keys, alter the namespaces, delete one outright."""
    payments = f"/api/v1/namespaces/{ids['payments/production']}/configs"
    h = owner.headers
    assert (
        await client.put(f"{payments}/app_name", headers=h, json={"value": "Wrecked"})
    ).is_success
    assert (
        await client.put(
            f"{payments}/db_password", headers=h, json={"value": "leaked", "is_secret": True}
        )
    ).is_success
    assert (
        await client.patch(f"{payments}/max_connections", headers=h, json={"description": "x"})
    ).is_success
    assert (await client.delete(f"{payments}/flags", headers=h)).status_code == 204
    assert (await client.delete(f"{payments}/debug", headers=h)).status_code == 204
    assert (await client.post(payments, headers=h, json={"key": "junk", "value": "j"})).is_success
    assert (
        await client.patch(
            f"/api/v1/namespaces/{ids['payments/production']}",
            headers=h,
            json={"description": "oops", "includes": []},
        )
    ).is_success
    gone = await client.delete(f"/api/v1/namespaces/{ids['shared']}?force=true", headers=h)
    assert gone.status_code == 204, gone.text
    empty = f"/api/v1/namespaces/{ids['empty']}/configs"
    assert (await client.post(empty, headers=h, json={"key": "stray", "value": "1"})).is_success
