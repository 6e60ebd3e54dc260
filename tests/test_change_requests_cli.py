"""``konfig cr …`` and the SDK's ``protection`` and ``change_requests`` against a live
``konfig serve``: two editors, one proposes, the other approves, the author merges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from konfig.client import AsyncKonfig, Forbidden, Konfig
from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow
EDITOR = [{"role": "viewer", "namespaces": "**"}, {"role": "editor", "namespaces": "payments/**"}]


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


async def test_the_cli_and_sdk_take_a_change_from_proposal_to_merge(
    server: ServerProcess, tmp_path: Path
) -> None:
    owner = logged_in(server, tmp_path / "owner", new_tenant(server.url))
    owner.ok("ns", "create", "payments/production")
    owner.ok("set", "payments/production", "limit=5")
    policy = json.loads(owner.ok("cr", "policies", "create", "*/production", "-o", "json"))
    assert policy["approvals_required"] == 1 and policy["enforcement"] == "hard"
    assert "*/production" in owner.ok("cr", "policies", "list")
    with Konfig(server.url) as admin:
        admin.auth.login(owner.email, PASSWORD)
        for name in ("alice", "bob"):
            admin.users.create(f"{name}@{owner.email.split('@')[1]}", PASSWORD, grants=EDITOR)
    domain = owner.email.split("@")[1]
    alice = logged_in(server, tmp_path / "alice", f"alice@{domain}")
    bob = logged_in(server, tmp_path / "bob", f"bob@{domain}")

    proposed = alice("set", "payments/production", "limit=10", "-m", "Raise the limit")
    assert proposed.returncode == 0, proposed.stderr
    assert "is protected: proposed in change request" in proposed.stderr
    (mine,) = json.loads(alice.ok("cr", "list", "--mine", "-o", "json"))
    request_id = mine["id"]
    assert mine["status"] == "draft" and mine["keys"] == ["limit"]
    assert request_id in proposed.stderr
    alice.ok("cr", "submit", request_id)
    shown = bob.ok("cr", "show", request_id)
    assert "Raise the limit" in shown and "'5' → '10'" in shown
    assert request_id in bob.ok("cr", "list", "--waiting")
    refused = alice("cr", "approve", request_id)
    assert refused.returncode != 0 and "you wrote this change request" in refused.stderr
    bob.ok("cr", "comment", request_id, "fine by me")
    assert "approved: 1/1, approved" in bob("cr", "approve", request_id, "-m", "ok").stderr
    merged = alice.process("cr", "merge", request_id)
    assert merged.returncode == 0 and "as revision 2" in merged.stderr
    assert (
        json.loads(owner.ok("get", "payments/production", "limit", "-o", "json"))["value"] == "10"
    )

    async with AsyncKonfig(server.url) as client:
        await client.auth.login(f"bob@{domain}", PASSWORD)
        done = await client.change_requests.get(request_id)
        assert done["status"] == "merged" and done["merged_revision"] == 2
        assert [e["kind"] for e in done["events"]] == ["submit", "comment", "approve", "merge"]
    with Konfig(server.url) as sdk:
        sdk.auth.login(f"bob@{domain}", PASSWORD)
        again = sdk.configs.set("payments/production", "limit", "11")
        assert again["status"] == "draft" and again["keys"] == ["limit"]
        sdk.change_requests.submit(again["id"], title="Eleven")
        with pytest.raises(Forbidden):
            sdk.change_requests.approve(again["id"])
        assert sdk.change_requests.list(waiting_for_me=True) == []
        (policy_read,) = sdk.protection.list()
        assert policy_read["id"] == policy["id"]

    # Soft enforcement: the owner commits directly, with a reason history shows.
    owner.ok("ns", "create", "payments/staging")
    owner.ok("cr", "policies", "create", "payments/staging", "--soft")
    bypassed = owner("set", "payments/staging", "mode=panic", "--bypass-reason", "incident 7")
    assert bypassed.returncode == 0 and "mode" in bypassed.stdout, bypassed.stderr
    assert "[bypass: incident 7]" in owner.ok("history", "payments/staging")
