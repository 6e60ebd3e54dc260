"""Following changes: the SDK's watch against the real app, the CLI's against a live server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.client import AsyncKonfig, NotFound
from tests.conftest import PASSWORD, Account
from tests.support.cli import Cli, new_tenant
from tests.support.servers import start_server

NS = "payments/production"


async def test_watch_sees_a_change_made_by_another_client(app: Any, owner: Account) -> None:
    transport = httpx.ASGITransport(app=app)
    async with AsyncKonfig("http://konfig.test", owner.access_token, transport=transport) as admin:
        await admin.namespaces.create(NS)
        await admin.configs.set(NS, "port", 8080, value_type="number")
        reader = await admin.tokens.create(
            "reader", [{"namespaces": "payments/*", "permissions": ["read"]}]
        )
        assert reader["token"].startswith("kfg_")
        async with AsyncKonfig(
            "http://konfig.test", reader["token"], transport=transport
        ) as service:
            assert await service.get_config(NS) == {"port": 8080}
            seen: asyncio.Queue[Any] = asyncio.Queue()
            watching = asyncio.create_task(service.follow(NS, seen.put, wait=20))
            try:
                assert await asyncio.wait_for(seen.get(), 10) == {"port": 8080}
                await admin.configs.set(NS, "port", 9090, value_type="number")
                assert await asyncio.wait_for(seen.get(), 10) == {"port": 9090}
            finally:
                watching.cancel()
            with pytest.raises(NotFound):
                await service.get_config("payments/nowhere")
        tokens = await admin.tokens.list()
        assert [t["name"] for t in tokens] == ["reader"]
        await admin.tokens.revoke(tokens[0]["id"])
        assert (await admin.tokens.get(tokens[0]["id"]))["status"] == "revoked"


@pytest.mark.slow
def test_cli_watch_and_run_watch_follow_changes(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        cli = Cli(tmp_path / "home", server.url, new_tenant(server.url))
        cli.ok("login", "--url", cli.url, "--email", cli.email, "--password", PASSWORD)
        cli.ok("ns", "create", NS)
        cli.ok("set", NS, "port=8080", "--type", "number")
        assert "PORT=8080" in cli.ok("render", NS, "--format", "env")

        konfig = [sys.executable, "-m", "konfig"]
        watch = subprocess.Popen(
            [*konfig, "watch", NS, "--count", "2"], env=cli.env, stdout=subprocess.PIPE, text=True
        )
        child = "import os, time; print(os.environ['PORT'], flush=True); time.sleep(60)"
        run = subprocess.Popen(
            [*konfig, "run", NS, "--watch", "--", sys.executable, "-c", child],
            env=cli.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert watch.stdout is not None and run.stdout is not None
            assert watch.stdout.readline().strip() == '{"port": 8080}'
            assert run.stdout.readline().strip() == "8080"
            cli.ok("set", NS, "port=9090", "--type", "number")
            assert watch.stdout.readline().strip() == '{"port": 9090}'
            assert watch.wait(30) == 0
            assert run.stdout.readline().strip() == "9090"  # restarted with the new config
        finally:
            for process in (watch, run):
                process.terminate()
                process.wait(30)

        tokens = cli.ok("tokens", "create", "ci", "--scope", "payments/*:read,write").strip()
        assert tokens.startswith("kfg_")
        assert "ci" in cli.ok("tokens", "list")
        as_token = cli.ok("get", NS, "port", env={"KONFIG_TOKEN": tokens})
        assert as_token.strip() == "9090"
        cli.ok("tokens", "revoke", "ci")
        revoked = cli("get", NS, "port", env={"KONFIG_TOKEN": tokens})
        assert revoked.returncode == 1
    finally:
        assert server.stop() == 0
