"""``konfig webhooks …`` and the SDK's ``webhooks`` methods against a live ``konfig serve``,
with a real receiver verifying each delivery with ``standardwebhooks``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from konfig.client import AsyncKonfig, Konfig, ValidationError
from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server
from tests.support.webhooks import receiving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("server"),
        KONFIG_LOGIN_ADDRESS_RATE_LIMIT="1000/minute",
        KONFIG_WEBHOOK_ALLOW_HTTP="true",
        KONFIG_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        KONFIG_WEBHOOK_POLL_SECONDS="0.2",
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


def settled(konfig: Konfig, webhook_id: str, count: int) -> list[dict[str, Any]]:
    """The delivery log once ``count`` deliveries have their outcome recorded."""
    deadline = time.monotonic() + 30
    while True:
        found = konfig.webhooks.deliveries(webhook_id)
        if sum(d["status"] != "pending" for d in found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_cli_creates_tests_rotates_disables_and_deletes_a_webhook(
    server: ServerProcess, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "home", server.url, new_tenant(server.url), in_process=True)
    cli.ok("login", "--url", cli.url, "--email", cli.email, "--password", PASSWORD)
    with receiving() as receiver:
        created = cli(
            "webhooks",
            "create",
            receiver.url,
            "--event",
            "config.changed",
            "--event",
            "webhook.test",
        )
        assert created.returncode != 0  # webhook.test is no event one subscribes to
        secret = cli.ok(
            "webhooks", "create", receiver.url, "--event", "config.changed", child=True
        ).strip()
        assert secret.startswith("whsec_")
        (listed,) = json.loads(cli.ok("webhooks", "list", "-o", "json"))
        assert listed["url"] == receiver.url and "secret" not in listed
        hook = listed["id"]
        cli.ok("webhooks", "test", hook)
        (ping,) = receiver.wait(1)
        assert ping.verified(secret)["type"] == "webhook.test"
        rotated = cli.ok("webhooks", "rotate-secret", hook).strip()
        cli.ok("ns", "create", "payments")
        cli.ok("set", "payments", "region=eu")
        change = receiver.wait(2)[1]
        assert change.verified(rotated)["data"]["changed_keys"] == ["region"]
        assert change.verified(secret)  # the old one signs beside it for 24 hours
        log = cli.ok("webhooks", "deliveries", hook)
        assert "webhook.test" in log and "config.changed" in log
        delivered = json.loads(cli.ok("webhooks", "deliveries", hook, "-o", "json"))
        cli.ok("webhooks", "redeliver", hook, delivered[-1]["id"])
        assert receiver.wait(3)[2].message_id == ping.message_id
    disabled = json.loads(cli.ok("webhooks", "update", hook, "--disable", "-o", "json"))
    assert disabled["enabled"] is False
    cli.ok("webhooks", "delete", hook)
    assert json.loads(cli.ok("webhooks", "list", "-o", "json")) == []


async def test_the_sdks_manage_webhooks_and_read_the_log(server: ServerProcess) -> None:
    email = new_tenant(server.url)
    with Konfig(server.url) as konfig, receiving() as receiver:
        konfig.auth.login(email, PASSWORD)
        with pytest.raises(ValidationError):
            konfig.webhooks.create("http://169.254.169.254/", ["config.changed"])
        hook = konfig.webhooks.create(receiver.url, ["config.changed"], namespaces="payments/**")
        assert konfig.webhooks.get(hook["id"])["namespaces"] == "payments/**"
        queued = konfig.webhooks.test(hook["id"])
        (ping,) = receiver.wait(1)
        assert ping.message_id == queued["message_id"]
        (delivery,) = settled(konfig, hook["id"], 1)
        assert delivery["status"] == "succeeded"
        again = konfig.webhooks.redeliver(hook["id"], delivery["id"])
        assert again["message_id"] == ping.message_id
        assert receiver.wait(2)[1].verified(hook["secret"])["type"] == "webhook.test"
        assert konfig.webhooks.update(hook["id"], enabled=False)["enabled"] is False
        rotated = konfig.webhooks.rotate_secret(hook["id"])
        assert rotated["secret"].startswith("whsec_")
        token = konfig.token
    async with AsyncKonfig(server.url, token=token) as client:
        (listed,) = await client.webhooks.list()
        assert listed["id"] == hook["id"]
        assert len(await client.webhooks.deliveries(hook["id"], status="succeeded")) == 1
        await client.webhooks.delete(hook["id"])
        assert await client.webhooks.list() == []
