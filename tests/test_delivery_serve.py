"""`konfig serve`: stopping (SIGTERM) ends open event streams and long polls cleanly; a read
leaves nothing behind for the cyclic garbage collector."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def _collected(metrics: str) -> float:
    """Objects the cyclic garbage collector has freed, all generations (Prometheus' GC figures)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "python_gc_objects_collected_total"
    )


@pytest.mark.slow
async def test_reads_leave_no_garbage_cycles(tmp_path: Path) -> None:
    """Under uvicorn, a read's scope, the server's request cycle and its ``send`` could hold each
    other in a reference cycle: every answer then left some objects for the cyclic collector,
    whose passes cost a quarter of a cached read. A run of reads frees none that way."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {"KONFIG_DATA_DIR": str(tmp_path / "data"), "KONFIG_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "konfig", "serve"], env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_ready, base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            email = "owner@cycles.example.com"
            account = {"name": "cycles", "email": email, "password": PASSWORD}
            assert (await http.post("/api/v1/auth/register", json=account)).status_code == 201
            login = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            made = await http.post("/api/v1/namespaces", headers=headers, json={"name": "svc"})
            assert made.status_code == 201
            for _ in range(50):  # warm: the caches filled, the first answers' objects made
                assert (await http.get("/api/v1/config/svc", headers=headers)).status_code == 200
            before = _collected((await http.get("/metrics")).text)
            reads = 1000
            for _ in range(reads):
                assert (await http.get("/api/v1/config/svc", headers=headers)).status_code == 200
            after = _collected((await http.get("/metrics")).text)
        # With the cycle, about seven objects an answer (7,000 here); without, a handful.
        assert after - before < reads / 10
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
