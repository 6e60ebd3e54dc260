"""`konfig serve` as a real process: migrates, serves, and answers the original spec's requests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.support.servers import start_server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    server = start_server(tmp_path)
    try:
        yield server.url
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_serve_answers_register_and_login(live_server: str, tmp_path: Path) -> None:
    created = httpx.post(
        f"{live_server}/api/v1/auth/register",
        json={"name": "mycompany", "email": "admin@mycompany.com", "password": "SecurePassword123"},
    )
    assert created.status_code == 201, created.text
    tokens = httpx.post(
        f"{live_server}/api/v1/auth/login",
        json={"email": "admin@mycompany.com", "password": "SecurePassword123"},
    ).json()
    me = httpx.get(
        f"{live_server}/api/v1/auth/me",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert me.json()["tenant_name"] == "mycompany"
    assert (tmp_path / "data" / "konfig.db").exists()
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_create_superuser_from_the_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env["KONFIG_DATA_DIR"] = str(tmp_path)
    args = [
        sys.executable,
        "-m",
        "konfig",
        "users",
        "create-superuser",
        "--email",
        "root@example.com",
    ]
    made = subprocess.run(
        [*args, "--password", PASSWORD], env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    again = subprocess.run(
        [*args, "--password", PASSWORD], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    missing = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert missing.returncode == 2
