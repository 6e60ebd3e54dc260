"""The issue's "done when", end to end against a live server and a stopped one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import start_server

pytestmark = pytest.mark.slow


SERVICE = """
import json, sys, warnings
from konfig.client import Konfig
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with Konfig(sys.argv[1], sys.argv[2], cache_path=sys.argv[3]) as konfig:
        config = konfig.get_config("payments/production")
print(json.dumps({"config": config, "warnings": [str(w.message) for w in caught]}))
"""


def test_done_when_a_new_user_runs_a_service_that_survives_an_outage(tmp_path: Path) -> None:
    """The issue's "done when", end to end: login, namespace, typed values, `konfig run`, and a
    service on the SDK that starts from its last-known-good file while the server is down."""
    server = start_server(tmp_path)
    try:
        cli = Cli(tmp_path / "home", server.url, new_tenant(server.url))
        cli.ok("login", "--url", cli.url, "--email", cli.email, "--password", PASSWORD)
        cli.ok("ns", "create", "payments/production")
        cli.ok("set", "payments/production", "max_connections=100", "--type", "number")
        cli.ok("set", "payments/production", "debug=false", "--type", "boolean")
        cli.ok("set", "payments/production", 'limits={"rps": 5}', "--type", "json")
        env = cli.ok("run", "payments/production", "--", "env").splitlines()
        assert {"MAX_CONNECTIONS=100", "DEBUG=false", 'LIMITS={"rps":5}'} <= set(env)

        token = cli.ok("tokens", "create", "payments-reader", "--scope", "payments/*:read")
        token = token.strip()
        assert token.startswith("kfg_")
        cache = tmp_path / "service" / "konfig-last-known-good.json"
        service = [sys.executable, "-c", SERVICE, server.url, token, str(cache)]
        expected = {"max_connections": 100, "debug": False, "limits": {"rps": 5}}

        up = subprocess.run(service, capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(up.stdout) == {"config": expected, "warnings": []}
        assert cache.stat().st_mode & 0o777 == 0o600
    finally:
        assert server.stop() == 0

    down = subprocess.run(service, capture_output=True, text=True, timeout=60, check=True)
    started = json.loads(down.stdout)
    assert started["config"] == expected
    assert "last-known-good" in started["warnings"][0]
