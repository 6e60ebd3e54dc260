"""`konfig clients …` against a live `konfig serve`, read by the Python SDK: the SDK names its
instance and itself (X-Konfig-Instance, X-Konfig-SDK), and the CLI shows the headline, the
instances, traffic, unread keys and a token's use."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from konfig.client import Konfig
from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("server"),
        KONFIG_LOGIN_ADDRESS_RATE_LIMIT="1000/minute",
        KONFIG_ANALYTICS_FLUSH_SECONDS="0.1",
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


def test_clients_of_a_namespace_read_by_the_sdk(server: ServerProcess, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", server.url, new_tenant(server.url), in_process=True)
    cli.ok("login", "--url", cli.url, "--email", cli.email, "--password", PASSWORD)
    with Konfig(server.url) as admin:
        admin.auth.login(cli.email, PASSWORD)
        admin.namespaces.create("payments")
        admin.namespaces.create("payments/production")
        admin.configs.set("payments", "unused", "nobody reads me", value_type="string")
        admin.configs.set("payments/production", "unused", "override", value_type="string")
        admin.configs.set("payments/production", "db_host", "db-1", value_type="string")
        token = admin.tokens.create(
            "checkout", [{"namespaces": "payments/**", "permissions": ["read"]}]
        )
    for name in ("checkout-a", "checkout-b"):
        with Konfig(server.url, token["token"], instance=name) as service:
            assert service.get_config("payments/production")["db_host"] == "db-1"

    listed = json.loads(cli.ok("clients", "list", "payments/production", "-o", "json", child=True))
    assert listed["headline"].startswith("2 of 2 instances on revision")
    assert sorted(c["instance"] for c in listed["items"]) == ["checkout-a", "checkout-b"]
    assert {c["sdk"].split("/")[0] for c in listed["items"]} == {"konfig-python"}
    table = cli.ok("clients", "list", "payments/production")
    assert "2 of 2 instances on revision" in table and "checkout-a" in table and "current" in table

    time.sleep(0.2)  # longer than the unread period asked for below
    unread = json.loads(
        cli.ok("clients", "keys", "payments", "--unread", "--unread-days", "0.000001", "-o", "json")
    )
    assert [row["key"] for row in unread] == ["unused"]  # overridden wherever it is read
    everywhere = json.loads(cli.ok("clients", "unread", "--unread-days", "0.000001", "-o", "json"))
    # Across the tenant; the production keys too by now (read once, 0.09 s is the period).
    assert ("payments", "unused") in [(row["namespace"], row["key"]) for row in everywhere]
    traffic = cli.ok("clients", "traffic", "payments/production", "--period", "week")
    assert "reads" in traffic and "not_modified" in traffic
    used = json.loads(cli.ok("clients", "token", token["id"], "-o", "json"))
    assert [(n["namespace"], n["instances"]) for n in used["namespaces"]] == [
        ("payments/production", 2)
    ]
    wrong = cli("clients", "list", "no/such")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
