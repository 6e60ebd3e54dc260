"""What the container runs, run for real without a container engine.

The image's CMD is started with the image's environment, and the very HEALTHCHECK command of the
Dockerfile and of docker-compose.yml is executed against it, as are the Kubernetes probe paths.
The package the builder stage installs is built the same way (`pip` on the source tree) and
checked to carry what `konfig serve` needs at run time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.dockerfile import env_pairs, exec_form, healthcheck_command, parse_stages

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # stands in for /opt/konfig/bin on the image's PATH


@dataclass
class Server:
    url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def image_environment(data_dir: Path, port: int) -> dict[str, str]:
    """The runtime stage's ENV, with the data dir and port moved to this test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    for instruction in parse_stages()[-1].all("ENV"):
        env |= {k: v for k, v in env_pairs(instruction.value).items() if k != "PATH"}
    assert env["KONFIG_DATA_DIR"] == "/data"
    env |= {"KONFIG_DATA_DIR": str(data_dir), "KONFIG_PORT": str(port)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_healthcheck(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("image")
    port = free_port()
    env = image_environment(root / "data", port)
    (cmd,) = parse_stages()[-1].all("CMD")
    process = subprocess.Popen(exec_form(cmd.value), env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, f"the image's CMD exited with {process.returncode}"
            assert time.monotonic() < deadline, "the image's CMD never became ready"
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield Server(url, port, env, process)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, "SIGTERM must end `konfig serve` cleanly"


@pytest.mark.slow
def test_the_dockerfile_healthcheck_passes_against_the_images_cmd(server: Server) -> None:
    command = healthcheck_command(parse_stages()[-1])
    assert run_healthcheck(command, server.env) == 0


@pytest.mark.slow
def test_the_dockerfile_healthcheck_fails_when_nothing_answers(tmp_path: Path) -> None:
    command = healthcheck_command(parse_stages()[-1])
    env = image_environment(tmp_path, free_port())
    assert run_healthcheck(command, env) != 0


@pytest.mark.slow
def test_the_compose_healthcheck_passes_against_the_images_cmd(server: Server) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kind, *command = compose["services"]["konfig"]["healthcheck"]["test"]
    assert kind == "CMD"
    # Compose publishes the container's 8000; here the server listens on a free port instead.
    command = [word.replace(":8000/", f":{server.port}/") for word in command]
    assert run_healthcheck(command, server.env) == 0


@pytest.mark.slow
def test_the_kubernetes_probe_paths_answer(server: Server) -> None:
    deployment = yaml.safe_load((ROOT / "deploy/k8s/base/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    probes = ("startupProbe", "livenessProbe", "readinessProbe")
    paths = {container[probe]["httpGet"]["path"] for probe in probes}
    assert paths == {"/health", "/ready"}
    for path in paths:
        assert httpx.get(f"{server.url}{path}", timeout=5).status_code == 200, path


@pytest.mark.slow
def test_the_package_the_builder_installs_carries_migrations_and_the_command(
    tmp_path: Path,
) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("konfig-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "konfig/db/migrations/env.py" in names
    assert "konfig/db/migrations/script.py.mako" in names
    assert any(name.startswith("konfig/db/migrations/versions/") for name in names)
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "konfig = konfig.cli:main" in scripts
