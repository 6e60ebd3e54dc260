"""`konfig users`, `groups` and `sso` against a live `konfig serve`: in process, with one real
`python -m konfig` child per command group."""

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
def owner(server: ServerProcess, tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home", server.url, new_tenant(server.url), in_process=True)
    cli.ok("login", "--url", cli.url, "--email", cli.email, "--password", PASSWORD)
    return cli


def test_users_are_added_with_grants_and_their_grants_replaced(owner: Cli) -> None:
    added = owner.ok(
        "users", "add", "dev@cli.example.com", "--grant", "viewer:**",
        "--grant", "editor:payments/**", "--password", PASSWORD, "-o", "json", child=True,
    )  # fmt: skip
    assert json.loads(added)["grants"] == [
        {"role": "viewer", "namespaces": "**"},
        {"role": "editor", "namespaces": "payments/**"},
    ]
    replaced = owner.ok("users", "grants", "dev@cli.example.com", "--grant", "admin:payments/**")
    assert "admin:payments/**" in replaced and "editor" not in replaced
    assert "admin:payments/**" in owner.ok("users", "grants", "dev@cli.example.com")
    listed = owner.ok("users", "list", "-o", "json")
    assert "dev@cli.example.com" in {u["email"] for u in json.loads(listed)}

    bad = owner("users", "grants", "dev@cli.example.com", "--grant", "boss:**")
    assert bad.returncode == 2 and "ROLE:PATTERN" in bad.stderr
    both = owner("users", "add", "x@cli.example.com", "--role", "viewer", "--grant", "viewer:**")
    assert both.returncode == 2 and "not both" in both.stderr
    owner_elsewhere = owner("users", "grants", "dev@cli.example.com", "--grant", "owner:pay/**")
    assert owner_elsewhere.returncode == 1 and "owner" in owner_elsewhere.stderr


def test_sso_is_set_from_a_file_with_the_secret_from_the_environment(
    owner: Cli, tmp_path: Path
) -> None:
    settings = tmp_path / "sso.yaml"
    settings.write_text(
        "issuer: https://login.cli.example.com\n"
        "client_id: konfig\n"
        "allowed_domains: [cli.example.com]\n"
        "role_mapping:\n"
        "  - {claim: groups, value: payments-devs, grants: [{role: editor, namespaces: 'payments/**'}]}\n"
    )
    missing = owner("sso", "set", str(settings))
    assert missing.returncode == 1 and "client_secret" in missing.stderr
    secret = "cli-client-s3cret"
    done = owner.process("sso", "set", str(settings), env={"KONFIG_SSO_CLIENT_SECRET": secret})
    assert done.returncode == 0, done.stderr
    assert "/ui/sso/callback" in done.stderr and secret not in done.stdout
    shown = json.loads(owner.ok("sso", "show", "-o", "json"))
    assert shown["client_secret_set"] is True and secret not in json.dumps(shown)
    assert shown["role_mapping"][0]["value"] == "payments-devs"
    unreadable = owner("sso", "set", str(tmp_path / "missing.yaml"))
    assert unreadable.returncode == 2


def test_groups_are_made_joined_changed_and_deleted(owner: Cli) -> None:
    owner.ok("users", "add", "ops@cli.example.com", "--role", "viewer", "--password", PASSWORD)
    made = owner.ok(
        "groups", "create", "payments-devs", "--grant", "editor:payments/**", child=True
    )
    assert "editor:payments/**" in made
    joined = json.loads(
        owner.ok("users", "groups", "ops@cli.example.com", "--group", "payments-devs", "-o", "json")
    )
    assert joined["groups"] == ["payments-devs"]
    assert "ops@cli.example.com" in owner.ok("groups", "list")
    changed = owner.ok("groups", "grants", "payments-devs", "--grant", "viewer:payments/**")
    assert "viewer:payments/**" in changed
    assert owner("users", "groups", "ops@cli.example.com").returncode == 2
    left = json.loads(owner.ok("users", "groups", "ops@cli.example.com", "--none", "-o", "json"))
    assert left["groups"] == []
    owner.ok("groups", "delete", "payments-devs")
    assert "payments-devs" not in owner.ok("groups", "list")
