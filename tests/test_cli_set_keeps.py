"""`konfig set` changes values only: an entry keeps its type, rules, description and secret flag
unless --type, --schema, --secret/--no-secret or --description say otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.client import Konfig
from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow
NS = "payments/staging"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("server"), KONFIG_LOGIN_ADDRESS_RATE_LIMIT="1000/minute"
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


def logged_in(server: ServerProcess, home: Path, email: str) -> Cli:
    cli = Cli(home, server.url, email, in_process=True)
    cli.ok("login", "--url", cli.url, "--email", email, "--password", PASSWORD)
    return cli


def bearer(url: str, email: str) -> dict[str, str]:
    answer = httpx.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def add_user(url: str, admin: dict[str, str], role: str) -> str:
    email = f"{role}-{new_tenant(url).split('@')[0]}@example.com"
    created = httpx.post(
        f"{url}/api/v1/users",
        headers=admin,
        json={"email": email, "password": PASSWORD, "role": role},
    )
    assert created.status_code == 201, created.text
    return email


def entry_of(cli: Cli, key: str) -> dict[str, Any]:
    return json.loads(cli.ok("get", NS, key, "-o", "json"))  # type: ignore[no-any-return]


def test_set_on_a_secret_keeps_it_secret(server: ServerProcess, tmp_path: Path) -> None:
    owner = logged_in(server, tmp_path / "owner", new_tenant(server.url))
    admin = bearer(server.url, owner.email)
    editor = logged_in(server, tmp_path / "editor", add_user(server.url, admin, "editor"))
    viewer = bearer(server.url, add_user(server.url, admin, "viewer"))
    owner.ok("ns", "create", NS)
    owner.ok("set", NS, "db_password=old-secret-1", "--secret", "--description", "the db")
    owner.ok("set", NS, "pool=10", "--type", "number", "--schema", '{"max_value": 100}')

    # The reproduction: an editor rotates the password with a plain `konfig set`.
    editor.ok("set", NS, "db_password=rotated-pw-7", child=True)
    editor.ok("set", NS, "pool=20")  # read as the entry's type: the number 20
    password = entry_of(editor, "db_password")
    assert password["is_secret"] is True and password["value"] == "********"
    assert password["description"] == "the db"
    pool = entry_of(editor, "pool")
    assert pool["value"] == 20 and pool["value_type"] == "number"
    assert pool["validation_schema"] == {"max_value": 100}

    api = f"{server.url}/api/v1"
    ns_id = httpx.get(f"{api}/namespaces", headers=viewer).json()["items"][0]["id"]
    key = f"{api}/namespaces/{ns_id}/configs/db_password"
    read = httpx.get(key, headers=viewer)
    assert read.json()["is_secret"] is True and read.json()["value"] == "********"
    history = httpx.get(f"{key}/history", headers=viewer)
    snapshot = httpx.get(f"{api}/namespaces/{ns_id}/revisions/3", headers=viewer)
    resolved = httpx.get(f"{api}/config/{NS}", headers=viewer)
    assert resolved.json()["db_password"] == "********"
    for answer in (read, history, snapshot, resolved):
        assert answer.status_code == 200, answer.text
        assert "rotated-pw-7" not in answer.text and "old-secret-1" not in answer.text
    assert all(v["value"] == "********" for v in history.json()["items"])

    # Rules are an admin's: an editor is refused, with the reason.
    refused = editor("set", NS, "pool=500", "--schema", '{"max_value": 1000}')
    assert refused.returncode == 1 and "admin" in refused.stderr
    assert "Traceback" not in refused.stderr
    unsecret = editor("set", NS, "db_password=x", "--no-secret")
    assert unsecret.returncode == 1 and "is_secret" in unsecret.stderr
    assert entry_of(owner, "pool")["value"] == 20

    owner.ok("set", NS, "db_password=now-plain", "--no-secret")
    assert entry_of(owner, "db_password")["value"] == "now-plain"
    owner.ok("set", NS, "pool=500", "--schema", "null")
    assert entry_of(owner, "pool")["validation_schema"] is None
    bad = owner("set", NS, "pool=1", "--schema", "[1]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr


def test_the_blocking_sdk_sets_and_updates_alike(server: ServerProcess) -> None:
    email = new_tenant(server.url)
    token = bearer(server.url, email)["Authorization"].removeprefix("Bearer ")
    with Konfig(server.url, token) as kfg:
        kfg.namespaces.create(NS)
        kfg.configs.set(NS, "api_key", "k-1", secret=True)
        assert kfg.configs.set(NS, "api_key", "k-2")["is_secret"] is True
        kfg.configs.set(NS, "retries", 3, value_type="number", validation_schema={"max_value": 5})
        assert kfg.configs.update(NS, "retries", value=4)["validation_schema"] == {"max_value": 5}
        dropped = kfg.configs.update(NS, "retries", validation_schema=None, description="tries")
        assert dropped["validation_schema"] is None and dropped["value"] == 4
        assert kfg.configs.get(NS, "api_key", reveal=True)["value"] == "k-2"
