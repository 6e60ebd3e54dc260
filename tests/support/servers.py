"""Starting real `konfig serve` processes for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.apps import free_port, wait_ready


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    data_dir: Path

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_server(tmp_path: Path, **env_overrides: str) -> ServerProcess:
    """A `konfig serve` subprocess on a free port with its own data directory."""
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {"KONFIG_DATA_DIR": str(data_dir), "KONFIG_PORT": str(port), **env_overrides}
    proc = subprocess.Popen([sys.executable, "-m", "konfig", "serve"], env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except AssertionError:
        proc.kill()
        raise
    return ServerProcess(proc, url, env, data_dir)


def start_replica(env: dict[str, str], data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc_env = env | {"KONFIG_DATA_DIR": str(data_dir), "KONFIG_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "konfig", "serve"], env=proc_env, cwd=data_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except AssertionError:
        proc.kill()
        raise
    return proc, url
