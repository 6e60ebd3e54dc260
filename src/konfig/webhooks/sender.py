"""One attempt: to the checked address only, within the timeout, reading at most 1 KB back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from konfig.webhooks.targets import Policy, TargetRefused, resolve

RESPONSE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What an attempt came to: a status (None: no answer), the start of the body, or why it
    failed, and for 429/503 the wait the receiver asked for."""

    status_code: int | None
    response: str
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Sender:
    """Sends attempts; one HTTP client per target host and scheme, so a pooled connection made
    for one name (its TLS server name checked) never carries another's request."""

    def __init__(self, policy: Policy, timeout: float, connections: int = 100) -> None:
        self.policy = policy
        self.timeout = timeout
        self.connections = connections
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}

    def _client(self, scheme: str, host: str) -> httpx.AsyncClient:
        client = self._clients.get((scheme, host))
        if client is None:
            client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: the address is the checked one
                timeout=httpx.Timeout(self.timeout),
                # Kept alive as many as are used at once: a fan-out reuses them next time.
                limits=httpx.Limits(
                    max_connections=self.connections, max_keepalive_connections=self.connections
                ),
            )
            self._clients[(scheme, host)] = client
        return client

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(self.timeout):
                target = await resolve(url, self.policy)
                return await self._post(target.url, target.pinned_url, headers, body, elapsed)
        except TargetRefused as exc:
            return Answer(None, "", str(exc)[:300], elapsed())
        except TimeoutError:
            return Answer(None, "", f"no answer within {self.timeout:g} s", elapsed())
        except httpx.HTTPError as exc:
            return Answer(None, "", f"{type(exc).__name__}: {exc}"[:300], elapsed())
        except OSError as exc:
            return Answer(None, "", f"{type(exc).__name__}: {exc.strerror or exc}"[:300], elapsed())

    async def _post(
        self,
        url: httpx.URL,
        pinned: httpx.URL,
        headers: dict[str, str],
        body: bytes,
        elapsed: Callable[[], int],
    ) -> Answer:
        host = url.host
        netloc = url.netloc.decode("ascii")
        client = self._client(url.scheme, host)
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "host": netloc},
            extensions={"sni_hostname": host} if url.scheme == "https" else {},
        )
        response = await client.send(request, stream=True)
        try:
            start = b""
            async for chunk in response.aiter_raw():
                start += chunk
                if len(start) >= RESPONSE_BYTES:
                    break  # never read more than what is kept
        finally:
            await response.aclose()
        text = start[:RESPONSE_BYTES].decode("utf-8", "replace")[:RESPONSE_BYTES]
        waited = None
        if response.status_code in (429, 503):
            waited = retry_after(response.headers.get("retry-after"))
        return Answer(response.status_code, text, None, elapsed(), waited)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
