"""`konfig backup create|list|restore` in a subprocess, on the same database as the server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Backend
from tests.support.backups import SECRET, backups_dir, content, seed, wreck


async def konfig(app: Any, backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line against the app's database, data directory and keyring."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATABASE_URL": backend.url,
        "KONFIG_DATA_DIR": str(app.state.settings.data_dir),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "konfig", "backup", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
async def test_backup_create_list_restore_from_the_command_line(
    client: httpx.AsyncClient, owner: Account, app: Any, backend: Backend
) -> None:
    ids = await seed(client, owner)
    before = await content(client, owner)

    made = await konfig(app, backend, "create", "--tenant", "acme")
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip()
    assert (backups_dir(app) / f"{backup_id}.yaml").exists()
    assert "3 namespaces, 8 entries" in made.stderr

    listed = await konfig(app, backend, "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    assert backup_id in listed.stdout and "yes" in listed.stdout

    await wreck(client, owner, ids)
    wrecked = await content(client, owner)
    dry = await konfig(app, backend, "restore", backup_id, "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ flags" in dry.stdout and "- junk" in dry.stdout and "~ db_password" in dry.stdout
    assert SECRET not in dry.stdout + dry.stderr
    assert await content(client, owner) == wrecked

    done = await konfig(app, backend, "restore", backup_id, "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert "restored backup" in done.stderr
    assert await content(client, owner) == before

    (backups_dir(app) / f"{backup_id}.yaml").write_bytes(b"format: konfig-backup/1\n")
    refused = await konfig(app, backend, "restore", backup_id, "--tenant", "acme")
    assert refused.returncode == 1
    assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    unknown = await konfig(app, backend, "create", "--tenant", "nobody")
    assert unknown.returncode == 1 and "no tenant named nobody" in unknown.stderr
