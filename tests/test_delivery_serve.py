"""`konfig serve` stopping (SIGTERM) ends open event streams and long polls cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.support.apps import free_port, wait_ready


@pytest.mark.slow
async def test_sigterm_ends_streams_and_long_polls_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {"KONFIG_DATA_DIR": str(tmp_path / "data"), "KONFIG_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "konfig", "serve"], env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_ready, base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            email = "owner@stop.example.com"
            created = await http.post(
                "/api/v1/auth/register", json={"name": "stop", "email": email, "password": PASSWORD}
            )
            assert created.status_code == 201
            login = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            made = await http.post("/api/v1/namespaces", headers=headers, json={"name": "svc"})
            assert made.status_code == 201
            etag = (await http.get("/api/v1/config/svc", headers=headers)).headers["etag"]
            polling = asyncio.create_task(
                http.get(
                    "/api/v1/config/svc",
                    headers={**headers, "If-None-Match": etag},
                    params={"wait": 60},
                )
            )
            async with http.stream("GET", "/api/v1/config/svc/events", headers=headers) as stream:
                lines = stream.aiter_lines()
                while (await anext(lines)) != "event: change":
                    pass
                proc.send_signal(signal.SIGTERM)
                # The stream ends with its final chunk: a cut connection would raise here.
                rest = [line async for line in lines]
                assert "event: change" not in rest
            poll = await polling
            assert poll.status_code == 304
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
