"""Apps built from their own settings, for tests that change what the default fixtures fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.dispatch import Dispatcher
from konfig.settings import Settings


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Dispatcher]:
    """The app, started (lifespan) and stopped around the block."""
    app = create_app(settings)
    # Not a speed check: a start on a loaded machine may take longer than the default 5 s.
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        yield app


def client_of(app: Dispatcher, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client that speaks to ``app`` in process, as if from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://konfig.test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"konfig serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("konfig serve did not become ready")


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
