"""Client commands against a live `konfig serve`: in process through Typer's runner, and as real
`python -m konfig …` children where the entry point itself is the point (the first login, `run`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Every test logs in from 127.0.0.1: lift the per-address login limit for this server.
    # No automatic backups: on a loaded machine a debounced one could land between a test's
    # `backup create` and `backup list`.
    process = start_server(
        tmp_path_factory.mktemp("server"),
        KONFIG_LOGIN_ADDRESS_RATE_LIMIT="1000/minute",
        KONFIG_BACKUP_DEBOUNCE_SECONDS="0",
        KONFIG_BACKUP_INTERVAL="0",
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture
def cli(server: ServerProcess, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home", server.url, new_tenant(server.url), in_process=True)


@pytest.fixture
def logged_in(cli: Cli) -> Cli:
    cli.ok("login", "--url", cli.url, "--email", cli.email, "--password", PASSWORD)
    return cli


def test_login_keeps_tokens_in_a_private_file(cli: Cli) -> None:
    result = cli.process("login", "--url", cli.url, "--email", cli.email, input=f"{PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    saved = cli.home / ".config" / "konfig" / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    content = json.loads(saved.read_text())
    assert content["url"] == cli.url and content["access_token"]
    assert json.loads(cli.ok("whoami", "-o", "json"))["email"] == cli.email

    wrong = cli("login", "--url", cli.url, "--email", cli.email, "--password", "not it at all")
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr and "error:" in wrong.stderr


def test_konfig_token_and_url_override_the_file(logged_in: Cli) -> None:
    bad = logged_in("whoami", env={"KONFIG_TOKEN": "not-a-token"})
    assert bad.returncode == 1 and "konfig login" in bad.stderr
    nowhere = logged_in("whoami", env={"KONFIG_URL": "http://127.0.0.1:9"})
    assert nowhere.returncode == 1 and "cannot reach" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_namespaces_and_typed_entries(logged_in: Cli) -> None:
    cli = logged_in
    cli.ok("ns", "create", "payments/production", "--description", "live")
    cli.ok("ns", "create", "payments/staging")
    listed = json.loads(cli.ok("ns", "list", "-o", "json"))
    assert [n["name"] for n in listed] == ["payments/production", "payments/staging"]
    assert "payments/production" in cli.ok("ns", "list")

    cli.ok("set", "payments/production", "max_connections=100", "--type", "number")
    cli.ok("set", "payments/production", "ratio=0.5", "debug=x", "--type", "string")
    cli.ok("set", "payments/production", "debug=false", "--type", "boolean")
    cli.ok("set", "payments/production", 'limits={"rps": 5}', "--type", "json")
    entry = json.loads(cli.ok("get", "payments/production", "max_connections", "-o", "json"))
    assert entry["value"] == 100 and entry["value_type"] == "number"
    assert cli.ok("get", "payments/production", "debug").strip() == "false"
    assert cli.ok("get", "payments/production", "limits").strip() == '{"rps": 5}'
    entries = json.loads(cli.ok("get", "payments/production", "-o", "json"))
    assert {e["key"] for e in entries} == {"max_connections", "ratio", "debug", "limits"}

    cli.ok("unset", "payments/production", "ratio")
    missing = cli("get", "payments/production", "ratio")
    assert missing.returncode == 1 and "ratio" in missing.stderr

    refused = cli("ns", "delete", "payments/production")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    cli.ok("ns", "delete", "payments/production", "--force")
    cli.ok("ns", "delete", "payments/staging")


def test_a_namespace_others_reference_is_not_deleted(logged_in: Cli) -> None:
    cli = logged_in
    cli.ok("ns", "create", "shared")
    cli.ok("ns", "create", "payments")
    cli.ok("set", "shared", "db_host=db.internal")
    cli.ok("set", "payments", "url=postgres://${ref:shared:db_host}/pay")
    refused = cli("ns", "delete", "shared", "--force")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "payments:url" in refused.stderr and "cannot be deleted" in refused.stderr
    cli.ok("unset", "payments", "url")
    cli.ok("ns", "delete", "shared", "--force")


def test_usage_errors_exit_2(logged_in: Cli) -> None:
    logged_in.ok("ns", "create", "payments/production")
    bad_number = logged_in("set", "payments/production", "n=many", "--type", "number")
    assert bad_number.returncode == 2 and "not a number" in bad_number.stderr
    assert logged_in("set", "payments/production", "novalue").returncode == 2
    assert logged_in("ns", "frobnicate").returncode == 2
    invalid = logged_in("set", "payments/production", "mode=x", "--type", "select")
    assert invalid.returncode == 1  # the server's validation: select needs options


def test_run_injects_the_config_into_the_child(logged_in: Cli) -> None:
    cli = logged_in
    cli.ok("ns", "create", "payments/production")
    cli.ok("set", "payments/production", "max_connections=100", "--type", "number")
    cli.ok("set", "payments/production", "feature.new-checkout=true", "--type", "boolean")
    cli.ok("set", "payments/production", 'limits={"rps": 5}', "--type", "json")
    cli.ok("set", "payments/production", "db_password=s3cret", "--secret")

    env = cli.ok("run", "payments/production", "--", "env").splitlines()
    assert "MAX_CONNECTIONS=100" in env
    assert "FEATURE_NEW_CHECKOUT=true" in env
    assert 'LIMITS={"rps":5}' in env
    assert "DB_PASSWORD=s3cret" in env

    code = cli("run", "payments/production", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert code.returncode == 3
    rendered = cli.ok("render", "payments/production", "--format", "json")
    assert json.loads(rendered)["max_connections"] == 100
    missing = cli("run", "payments/production", "--", "no-such-command-here")
    assert missing.returncode == 127


def test_backup_through_the_api_without_tenant(logged_in: Cli) -> None:
    cli = logged_in
    cli.ok("ns", "create", "payments/production")
    cli.ok("set", "payments/production", "port=8080", "--type", "number")
    backup_id = cli.ok("backup", "create").strip()
    listed = json.loads(cli.ok("backup", "list", "-o", "json"))
    assert [b["id"] for b in listed] == [backup_id]
    cli.ok("set", "payments/production", "port=9090", "--type", "number")
    dry = cli.ok("backup", "restore", backup_id, "--dry-run")
    assert "~ port" in dry
    cli.ok("backup", "restore", backup_id)
    assert cli.ok("get", "payments/production", "port").strip() == "8080"
    missing = cli("backup", "restore", "20200101T000000.000Z")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_a_stale_access_token_is_refreshed_once(logged_in: Cli) -> None:
    saved = logged_in.home / ".config" / "konfig" / "credentials.json"
    content = json.loads(saved.read_text())
    content["access_token"] = "expired-or-garbage"
    saved.write_text(json.dumps(content))
    assert json.loads(logged_in.ok("whoami", "-o", "json"))["email"] == logged_in.email
    refreshed = json.loads(saved.read_text())
    assert refreshed["access_token"] != "expired-or-garbage"
    assert refreshed["refresh_token"] != content["refresh_token"]  # rotated
    logged_in.ok("logout")
    assert not saved.exists()
    assert logged_in("whoami").returncode == 1
