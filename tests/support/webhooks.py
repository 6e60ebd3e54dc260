"""Real HTTP receivers for webhook tests: a threaded ``http.server`` on loopback that records
every request and answers as the test says, and the verification of each delivery with the
``standardwebhooks`` package (which no one here wrote)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.conftest import Account


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, once ``standardwebhooks`` has verified its signature and timestamp."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload


# What a receiver answers the n-th request (from 0): status, headers, body; or a callable that
# does something else with the handler (sleeps, closes) and answers nothing.
Answer = tuple[int, dict[str, str], bytes]
Behaviour = Callable[[int, Received], Answer | None]


def ok(_n: int, _request: Received) -> Answer:
    return 200, {}, b"thanks"


@dataclass
class Receiver:
    behaviour: Behaviour = ok
    received: list[Received] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def record(self, request: Received) -> int:
        with self.condition:
            self.received.append(request)
            self.condition.notify_all()
            return len(self.received) - 1

    def wait(self, count: int, timeout: float = 30) -> list[Received]:
        """Block until ``count`` requests have arrived (a signal, with a generous deadline)."""
        with self.condition:
            arrived = self.condition.wait_for(lambda: len(self.received) >= count, timeout)
        assert arrived, f"{len(self.received)} of {count} webhook requests arrived"
        return list(self.received)

    async def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        return await asyncio.to_thread(self.wait, count, timeout)

    def deduplicated(self) -> list[Received]:
        """Each message once, as a receiver de-duplicating on ``webhook-id`` keeps them."""
        seen: set[str] = set()
        kept = []
        for request in self.received:
            if request.message_id not in seen:
                seen.add(request.message_id)
                kept.append(request)
        return kept


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            answer = receiver.behaviour(receiver.record(request), request)
            if answer is None:
                self.close_connection = True
                return
            status, headers, content = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            try:
                self.wfile.write(content)
            except OSError:
                pass  # the sender stopped reading (a large answer): as it should

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(behaviour: Behaviour = ok, host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A receiver listening on a free loopback port for the block."""
    receiver = Receiver(behaviour)
    server = ThreadingHTTPServer((host, 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://{host}:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def slow(seconds: float) -> Behaviour:
    def answer(_n: int, _request: Received) -> Answer:
        time.sleep(seconds)
        return 200, {}, b"late"

    return answer


async def subscribe(
    client: httpx.AsyncClient,
    admin: Account,
    url: str,
    events: list[str] | None = None,
    namespaces: str = "**",
) -> dict[str, Any]:
    created = await client.post(
        "/api/v1/webhooks",
        headers=admin.headers,
        json={"url": url, "events": events or ["config.changed"], "namespaces": namespaces},
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def deliveries(
    client: httpx.AsyncClient, admin: Account, webhook_id: str, **params: str
) -> list[dict[str, Any]]:
    answer = await client.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", headers=admin.headers, params=params
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def settled(
    client: httpx.AsyncClient, admin: Account, webhook_id: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """The delivery log once ``count`` deliveries are no longer pending (their outcome is
    recorded a moment after the receiver answered)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await deliveries(client, admin, webhook_id)
        done = [d for d in found if d["status"] != "pending"]
        if len(done) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def payloads(requests: list[Received], secret: str) -> list[dict[str, Any]]:
    return [r.verified(secret) for r in requests]


def types(requests: list[Received]) -> list[str]:
    return [json.loads(r.body)["type"] for r in requests]
