"""What the sync and async clients share: calls, flows, the retry policy.

An API operation is written once, as a *flow*: a generator that yields the :class:`Call` it
needs, receives the :class:`httpx.Response`, and returns its result. ``Konfig`` drives flows
with a blocking ``httpx.Client``, ``AsyncKonfig`` with an ``httpx.AsyncClient``; neither holds
any of the API's logic.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import AsyncIterable, Generator, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from konfig_client._exceptions import ConnectionError, KonfigError, error_from_response

T = TypeVar("T")

API = "/api/v1"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})
USER_AGENT = "konfig-python"


def identity(instance: str | None) -> dict[str, str]:
    """The headers that name this client to the server's usage analytics: ``X-Konfig-Instance``
    (``instance``, else ``$KONFIG_INSTANCE``, else host name and process id) and
    ``X-Konfig-SDK`` (this SDK and its version)."""
    try:
        version = metadata.version("konfig-client")
    except metadata.PackageNotFoundError:
        version = "0"
    named = instance or os.environ.get("KONFIG_INSTANCE") or f"{socket.gethostname()}-{os.getpid()}"
    return {
        "User-Agent": USER_AGENT,
        "X-Konfig-Instance": named,
        "X-Konfig-SDK": f"{USER_AGENT}/{version}",
    }


@dataclass(frozen=True)
class Call:
    """One HTTP request as an operation describes it."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | str | Iterable[bytes] | AsyncIterable[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    retry: bool = True


Flow = Generator[Call, httpx.Response, T]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for idempotent calls: transport errors and 5xx, never 4xx.

    The pause before retry ``n`` (from 1) is drawn uniformly from ``[0, min(cap, base * 2**n)]``
    ("full jitter"), so many clients restarting together do not hammer the server in step.
    """

    attempts: int = 3
    base: float = 0.2
    cap: float = 5.0

    def pause(self, retry: int) -> float:
        return _rng.uniform(0.0, min(self.cap, self.base * 2.0**retry))


_rng = random.SystemRandom()


def backoff(failures: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """A jittered exponential pause after ``failures`` consecutive failures (watch reconnects)."""
    ceiling = min(cap, base * 2.0 ** max(0, failures - 1))
    return ceiling / 2 + _rng.uniform(0, ceiling / 2)


def may_retry(call: Call, *, response: httpx.Response | None) -> bool:
    if not call.retry or call.method.upper() not in IDEMPOTENT:
        return False
    return response is None or response.status_code in RETRY_STATUSES


def build_request(
    http: httpx.Client | httpx.AsyncClient, call: Call, token: str | None
) -> httpx.Request:
    headers = dict(call.headers)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # As UTF-8, not httpx's ASCII: an X-Konfig-Message may say "café ✓" (the server reads UTF-8).
    raw_headers = [(name.encode(), value.encode("utf-8")) for name, value in headers.items()]
    # A None parameter means "not given": httpx would send it as an empty value.
    params = {k: v for k, v in (call.params or {}).items() if v is not None}
    return http.build_request(
        call.method,
        call.path,
        params=params or None,
        json=call.json,
        content=call.content,
        headers=raw_headers,
        timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
    )


def check(response: httpx.Response) -> httpx.Response:
    """The response, or the exception its error answer maps to."""
    if response.status_code >= 400:
        raise error_from_response(response)
    return response


def unreachable(exc: httpx.TransportError, url: str) -> ConnectionError:
    reason = str(exc) or type(exc).__name__
    return ConnectionError(f"cannot reach Konfig at {url}: {reason}", code="CONNECTION_ERROR")


def quote_segment(value: str) -> str:
    return quote(value, safe="")


def quote_name(name: str) -> str:
    """A namespace name inside a path: its slashes stay slashes."""
    return quote(name, safe="/")


def paginate(
    path: str, params: dict[str, Any] | None = None, *, max_items: int | None = None
) -> Flow[list[Any]]:
    """Every item of a ``{items, next_cursor}`` list, following cursors."""
    items: list[Any] = []
    query = dict(params or {})
    while True:
        response = yield Call("GET", path, params={k: v for k, v in query.items() if v is not None})
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor or (max_items is not None and len(items) >= max_items):
            return items if max_items is None else items[:max_items]
        query["cursor"] = cursor


__all__ = [
    "API",
    "Call",
    "Flow",
    "KonfigError",
    "RetryPolicy",
    "backoff",
    "build_request",
    "check",
    "may_retry",
    "paginate",
    "quote_name",
    "quote_segment",
    "unreachable",
]
