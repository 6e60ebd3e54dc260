"""History and revisions from the command line, against a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("server"), KONFIG_LOGIN_ADDRESS_RATE_LIMIT="1000/minute"
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture
def cli(server: ServerProcess, tmp_path: Path) -> Cli:
    user = Cli(tmp_path / "home", server.url, new_tenant(server.url), in_process=True)
    user.ok("login", "--url", user.url, "--email", user.email, "--password", PASSWORD)
    user.ok("ns", "create", "payments/production")
    return user


def test_history_diff_and_rollback(cli: Cli) -> None:
    ns = "payments/production"
    cli.ok("set", ns, "port=8080", "--type", "number")
    cli.ok("set", ns, "port=9090", "--type", "number", "-m", "more ports")
    cli.ok("set", ns, "debug=true", "--type", "boolean")
    revisions = json.loads(cli.ok("history", ns, "-o", "json", child=True))
    assert [r["revision"] for r in revisions] == [3, 2, 1]
    assert "more ports" in cli.ok("history", ns)
    versions = json.loads(cli.ok("history", ns, "port", "-o", "json"))
    assert [v["value"] for v in versions] == [9090, 8080]

    diff = cli.ok("diff", ns, "1")
    assert "~ port: 8080 -> 9090" in diff and "+ debug: true" in diff

    cli.ok("rollback", ns, "--key", "port", "--version", "1")
    assert cli.ok("get", ns, "port").strip() == "8080"
    dry = cli("rollback", ns, "1", "--dry-run")
    assert dry.returncode == 0 and "- debug" in dry.stdout
    assert cli.ok("get", ns, "debug").strip() == "true"
    cli.ok("rollback", ns, "1")
    assert cli("get", ns, "debug").returncode == 1
    assert cli("rollback", ns).returncode == 2


def test_export_and_import_with_progress(cli: Cli, tmp_path: Path) -> None:
    ns = "payments/production"
    cli.ok("set", ns, "port=8080", "--type", "number")
    exported = tmp_path / "production.yaml"
    cli.ok("export", ns, "--to", str(exported))
    assert "port" in exported.read_text()
    assert "8080" in cli.ok("export", ns, "--format", "env")

    big = tmp_path / "big.env"
    big.write_text("".join(f"KEY_{i}={'x' * 100}\n" for i in range(3000)))
    assert big.stat().st_size > 256 * 1024
    result = cli("import", ns, str(big), "--dry-run")  # streamed, under a progress bar
    assert result.returncode == 0, result.stderr
    assert "+ KEY_2999" in result.stdout and "would import" in result.stderr
    env_file = tmp_path / "small.env"
    env_file.write_text("TIMEOUT=30s\n")
    cli.ok("import", ns, str(env_file))
    assert cli.ok("get", ns, "TIMEOUT").strip() == "30s"
    assert cli("import", ns, str(tmp_path / "nope.yaml")).returncode == 2
