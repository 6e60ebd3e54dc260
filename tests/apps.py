"""Apps built from their own settings, for tests that change what the default fixtures fix."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from konfig.app import create_app
from konfig.settings import Settings
from tests.test_cli_serve import free_port, wait_ready


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app, started (lifespan) and stopped around the block."""
    app = create_app(settings)
    async with LifespanManager(app):
        yield app


def client_of(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client that speaks to ``app`` in process, as if from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://konfig.test")


@contextmanager
def konfig_serve(
    tmp_path: Path, stdout: int | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``python -m konfig serve`` on a free port, ready; stopped (SIGTERM) afterwards."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    environ |= {"KONFIG_DATA_DIR": str(tmp_path / "data"), "KONFIG_PORT": str(port), **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "konfig", "serve"],
        env=environ,
        cwd=tmp_path,
        stdout=stdout,
        stderr=subprocess.PIPE if stdout is not None else None,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)
