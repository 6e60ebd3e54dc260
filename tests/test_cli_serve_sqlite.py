"""SQLite serves one server process: `konfig serve --workers N` and a second server on the same
database file are refused; the file is free again once its server ends, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.apps import free_port
from tests.support.servers import start_server

pytestmark = pytest.mark.slow


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`konfig serve` that is expected to refuse: it must end by itself, without serving."""
    return subprocess.run(
        [sys.executable, "-m", "konfig", "serve", *args],
        env=env | {"KONFIG_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env["KONFIG_DATA_DIR"] = str(tmp_path / "data")
    refused = serve(env, "--workers", "2")
    assert refused.returncode == 1, refused.stderr
    assert "--workers 2: SQLite serves one server process" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "data" / "konfig.db").exists()  # refused before migrating


def test_a_second_server_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    try:
        refused = serve(first.env)
        assert refused.returncode == 1, refused.stderr
        database = first.data_dir / "konfig.db"
        assert (
            f"another Konfig server (process {first.proc.pid}) is serving the SQLite database "
            f"{database}" in refused.stderr
        )
        assert "Traceback" not in refused.stderr
        assert httpx.get(f"{first.url}/ready").status_code == 200  # the first serves on
    finally:
        assert first.stop() == 0
    # Stopped, it let go of the file: the next server starts.
    second = start_server(tmp_path)
    assert second.stop() == 0


def test_a_server_killed_outright_leaves_no_lock_behind(tmp_path: Path) -> None:
    crashed = start_server(tmp_path)
    crashed.proc.send_signal(signal.SIGKILL)
    assert crashed.proc.wait(timeout=30) == -signal.SIGKILL
    assert (crashed.data_dir / "konfig.db.server.lock").exists()  # the file stays, unlocked
    restarted = start_server(tmp_path)
    try:
        assert httpx.get(f"{restarted.url}/ready").status_code == 200
    finally:
        assert restarted.stop() == 0
