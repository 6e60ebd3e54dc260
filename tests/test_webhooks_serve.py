"""A real ``konfig serve`` killed outright (SIGKILL) between a commit and its delivery: the
delivery happens after the restart, with the same ``webhook-id``, and in order."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.support.servers import start_server
from tests.support.webhooks import Answer, Received, receiving

ENV = {
    "KONFIG_WEBHOOK_ALLOW_HTTP": "true",
    "KONFIG_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "KONFIG_WEBHOOK_TIMEOUT_SECONDS": "1",  # a lease of 7 s: the killed server's runs out soon
    "KONFIG_WEBHOOK_POLL_SECONDS": "0.2",
}


def owner_headers(http: httpx.Client) -> dict[str, str]:
    email = "owner@acme.example.com"
    created = http.post(
        "/api/v1/auth/register", json={"name": "acme", "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.mark.slow
def test_kill_9_between_commit_and_delivery_loses_no_event(tmp_path: Path) -> None:
    release = threading.Event()

    def hold_the_first(n: int, _request: Received) -> Answer | None:
        if n == 0:
            release.wait(60)  # the server dies while it waits for this answer
            return None
        return 200, {}, b"ok"

    with receiving(hold_the_first) as receiver:
        server = start_server(tmp_path, **ENV)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                headers = owner_headers(http)
                hook = http.post(
                    "/api/v1/webhooks",
                    headers=headers,
                    json={"url": receiver.url, "events": ["config.changed"]},
                ).json()
                made = http.post("/api/v1/namespaces", headers=headers, json={"name": "payments"})
                entry = f"/api/v1/namespaces/{made.json()['id']}/configs/region"
                assert http.put(entry, headers=headers, json={"value": "eu"}).status_code == 201
                (first,) = receiver.wait(1)  # sent, and its answer held back
                # Committed while the first is in flight: it waits its turn (same namespace).
                assert http.put(entry, headers=headers, json={"value": "us"}).status_code == 200
            server.proc.send_signal(signal.SIGKILL)
            assert server.proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            release.set()
            if server.proc.poll() is None:
                server.proc.kill()
        restarted = start_server(tmp_path, **ENV)
        try:
            received = receiver.wait(3, timeout=60)
        finally:
            assert restarted.stop() == 0
    kept = receiver.deduplicated()
    assert [r.message_id for r in received[:2]] == [first.message_id] * 2  # sent again, same id
    revisions = [r.verified(hook["secret"])["data"]["new_revision"] for r in kept]
    assert revisions == [1, 2]
