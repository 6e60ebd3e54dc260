"""The YAML tree: the mirror written after each commit, and `konfig import-tree` loading one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from tests.conftest import Account, Backend, make_settings, register, wipe
from tests.support.revisions import (
    API,
    contents,
    delete_entry,
    namespace_revision,
    new_namespace,
    put_entry,
    snapshot,
)


@pytest.fixture
async def mirrored(backend: Backend, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that mirrors every commit into ``tmp_path / "mirror"``."""
    settings = make_settings(backend.url, tmp_path, mirror_dir=tmp_path / "mirror")
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as http:
            yield http
    await wipe(backend.url)


def mirrored_file(tmp_path: Path, name: str) -> dict[str, Any]:
    text = (tmp_path / "mirror" / "acme" / f"{name}.yaml").read_text()
    assert text.startswith(f"# konfig mirror of acme/{name} at revision ")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


async def import_tree(
    backend: Backend, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`konfig import-tree` as its own process, in a thread: the app under test keeps its event
    loop, so a background writer of its own that holds SQLite's write lock can finish (waiting
    on the child with the loop stopped, the child would wait for that lock in vain)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATABASE_URL": backend.url,
        "KONFIG_DATA_DIR": str(tmp_path),  # the app's data dir: the same encryption keys
        "KONFIG_MIRROR_DIR": str(tmp_path / "mirror"),
        "COLUMNS": "500",  # no line wrapping in the messages
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "konfig", "import-tree", str(tmp_path / "mirror"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_each_commit_rewrites_the_namespace_file_without_secrets(
    mirrored: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await register(mirrored, "acme")
    ns = await new_namespace(mirrored, owner)
    await put_entry(mirrored, owner, ns, "db_url", "postgres://db")
    await put_entry(mirrored, owner, ns, "api_key", "k-123", is_secret=True)
    await put_entry(mirrored, owner, ns, "limits", {"rps": 10, "burst": [1, 2]}, value_type="json")
    folder = tmp_path / "mirror" / "acme" / "payments"
    text = (folder / "production.yaml").read_text()
    assert text.startswith("# konfig mirror of acme/payments/production at revision 3;")
    assert "k-123" not in text and "api_key" not in text
    assert mirrored_file(tmp_path, "payments/production") == {
        "entries": [
            {
                "key": "db_url",
                "value": "postgres://db",
                "value_type": "string",
                "validation_schema": None,
                "description": "",
                "is_secret": False,
            },
            {
                "key": "limits",
                "value": {"rps": 10, "burst": [1, 2]},
                "value_type": "json",
                "validation_schema": None,
                "description": "",
                "is_secret": False,
            },
        ]
    }
    await delete_entry(mirrored, owner, ns, "db_url")
    entries = mirrored_file(tmp_path, "payments/production")["entries"]
    assert [e["key"] for e in entries] == ["limits"]
    assert sorted(p.name for p in folder.iterdir()) == ["production.yaml"]  # no temporary files

    # The file is a document: PUT it as is and get the same (non-secret) entries.
    copy = await new_namespace(mirrored, owner, "copy")
    answer = await mirrored.put(
        f"{API}/namespaces/{copy}/document",
        headers={**owner.headers, "Content-Type": "application/yaml"},
        content=(folder / "production.yaml").read_bytes(),
    )
    assert answer.status_code == 200, answer.text
    assert (tmp_path / "mirror" / "acme" / "copy.yaml").exists()


async def test_import_tree_loads_one_revision_per_namespace_and_keeps_secrets(
    mirrored: httpx.AsyncClient, tmp_path: Path, backend: Backend
) -> None:
    owner: Account = await register(mirrored, "acme")
    ns = await new_namespace(mirrored, owner)
    await put_entry(mirrored, owner, ns, "db_url", "postgres://db")
    await put_entry(mirrored, owner, ns, "region", "eu")
    await put_entry(mirrored, owner, ns, "api_key", "k-123", is_secret=True)
    tree = tmp_path / "mirror" / "acme"
    edited = tree / "payments" / "production.yaml"
    edited.write_text(
        "entries:\n  - key: db_url\n    value: postgres://new-db\n"
        "  - {key: retries, value: 3, value_type: number}\n"
    )
    (tree / "shared").mkdir()
    (tree / "shared" / "production.yml").write_text("entries:\n  - {key: log_level, value: info}\n")
    (tree / "shared" / ".production.yml.tmp").write_text("not: [yaml")  # skipped: hidden

    dry = await import_tree(backend, tmp_path, "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "payments/production: +1 ~1 -1 (dry run)" in dry.stdout
    assert "shared/production: +1 ~0 -0 (dry run) (new)" in dry.stdout
    assert await namespace_revision(mirrored, owner, ns) == 3
    listed = await mirrored.get(f"{API}/namespaces", headers=owner.headers)
    assert [n["name"] for n in listed.json()["items"]] == ["payments/production"]

    done = await import_tree(backend, tmp_path, "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert "payments/production: +1 ~1 -1 revision 4" in done.stdout
    assert "2 namespace(s) changed" in done.stderr
    after = contents(await snapshot(mirrored, owner, ns, 4, reveal="true"))
    assert after == {
        "api_key": ("k-123", "string", None, "", True),
        "db_url": ("postgres://new-db", "string", None, "", False),
        "retries": (3, "number", None, "", False),
    }
    revisions = await mirrored.get(f"{API}/namespaces/{ns}/revisions", headers=owner.headers)
    latest = revisions.json()["items"][0]
    assert (latest["actor"], latest["message"]) == (
        "cli:import-tree",
        "import-tree payments/production",
    )
    listed = await mirrored.get(f"{API}/namespaces", headers=owner.headers)
    shared = next(n for n in listed.json()["items"] if n["name"] == "shared/production")
    assert (shared["revision"], shared["entry_count"]) == (1, 1)
    assert mirrored_file(tmp_path, "shared/production")["entries"][0]["key"] == "log_level"

    (tree / "broken.yaml").write_text(
        "entries:\n  - {key: port, value: high, value_type: number}\n"
    )
    (tree / "Bad Name.yaml").write_text("entries: []\n")
    edited.write_text("entries: []\n")
    refused = await import_tree(backend, tmp_path, "--tenant", "acme")
    assert refused.returncode == 1
    assert "Bad Name.yaml" in refused.stderr and "nothing was imported" in refused.stderr
    (tree / "Bad Name.yaml").unlink()
    refused = await import_tree(backend, tmp_path, "--tenant", "acme")
    assert refused.returncode == 1 and "broken: port" in refused.stderr
    assert await namespace_revision(mirrored, owner, ns) == 4  # not emptied: all or nothing

    (tmp_path / "mirror" / "nobody").mkdir()
    unknown = await import_tree(backend, tmp_path, "--tenant", "nobody")
    assert unknown.returncode == 1 and "no tenant named nobody" in unknown.stderr
