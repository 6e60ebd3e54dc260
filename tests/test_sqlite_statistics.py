"""SQLite plans a namespace's entries by the namespace, not the tenant, once it has statistics.

Without them SQLite guessed that ``tenant_id = ?`` was as selective as ``namespace_id IN (…)``
and scanned all the tenant's entries for every first read: 14 ms at 10,000 namespaces, growing
with the tenant. A server gathers statistics when it starts and every few minutes, and
``konfig import-tree`` when it has imported (``konfig.db.engine.refresh_statistics``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from konfig.db.migrate import upgrade
from tests.conftest import make_settings, register
from tests.support.apps import client_of, running
from tests.support.readpath import make_namespace, set_entry

ENTRIES_OF = (
    "SELECT key FROM config_entries WHERE tenant_id = ? AND namespace_id IN (?, ?)"  # as resolved
)


def _plan(path: Path) -> str:
    with sqlite3.connect(path) as db:
        tenant, first, second = db.execute(
            "SELECT tenant_id, id, (SELECT id FROM namespaces LIMIT 1 OFFSET 1) FROM namespaces"
        ).fetchone()
        rows = db.execute(f"EXPLAIN QUERY PLAN {ENTRIES_OF}", (tenant, first, second)).fetchall()
    return " ".join(str(row[-1]) for row in rows)


async def test_a_server_gathers_statistics_so_entries_are_found_by_namespace(
    tmp_path: Path,
) -> None:
    path = tmp_path / "konfig.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    settings = make_settings(url, tmp_path)
    async with running(settings) as app, client_of(app) as client:  # started on an empty database
        owner = await register(client, "acme")
        for service in range(20):
            namespace_id = await make_namespace(client, owner, f"svc-{service}")
            for key in range(3):
                await set_entry(client, owner, namespace_id, f"key_{key}", "value")
    assert "ix_config_entries_tenant_id" in _plan(path)  # what SQLite guesses without them

    async with running(settings):  # a server gathers them as it starts (and every few minutes)
        assert "ix_config_entries_namespace_id" in _plan(path)
