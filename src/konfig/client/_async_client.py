"""``AsyncKonfig``: the asyncio client, the same surface as ``Konfig`` with ``await``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import httpx

from konfig.client import _operations as ops
from konfig.client._analytics import AsyncAnalytics
from konfig.client._async_resources import (
    AsyncAudit,
    AsyncAuth,
    AsyncBackups,
    AsyncConfigs,
    AsyncNamespaces,
    AsyncRevisions,
    AsyncTokens,
    AsyncWebhooks,
)
from konfig.client._base import (
    Call,
    Flow,
    RetryPolicy,
    backoff,
    build_request,
    check,
    identity,
    may_retry,
    unreachable,
)
from konfig.client._cache import LastKnownGood
from konfig.client._exceptions import ConnectionError, RateLimited, ServerError
from konfig.client._flags import AsyncFlags
from konfig.client._people import AsyncGroups, AsyncSso, AsyncUsers

T = TypeVar("T")
log = logging.getLogger("konfig.client")
TextFormat = Literal["yaml", "env", "properties"]


class AsyncKonfig:
    """An asyncio Konfig client; ``transport=httpx.ASGITransport(app)`` runs it in-process."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        instance: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self.cache = LastKnownGood(cache_path) if cache_path is not None else None
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers=identity(instance),
        )
        self.auth = AsyncAuth(self)
        self.namespaces = AsyncNamespaces(self)
        self.configs = AsyncConfigs(self)
        self.revisions = AsyncRevisions(self)
        self.tokens = AsyncTokens(self)
        self.backups = AsyncBackups(self)
        self.audit = AsyncAudit(self)
        self.users = AsyncUsers(self)
        self.sso = AsyncSso(self)
        self.groups = AsyncGroups(self)
        self.webhooks = AsyncWebhooks(self)
        self.flags = AsyncFlags(self._run)
        self.analytics = AsyncAnalytics(self._run)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncKonfig:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 1
        while True:
            request = build_request(self._http, call, self.token)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                if attempt < self.retry.attempts and may_retry(call, response=None):
                    await asyncio.sleep(self.retry.pause(attempt))
                    attempt += 1
                    continue
                raise unreachable(exc, self.url) from exc
            if attempt < self.retry.attempts and may_retry(call, response=response):
                await response.aclose()
                await asyncio.sleep(self.retry.pause(attempt))
                attempt += 1
                continue
            return check(response)

    async def _run(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._send(call))
        except StopIteration as stop:
            return cast(T, stop.value)

    @overload
    async def get_config(
        self, name: str, *, format: Literal["json"] = "json"
    ) -> dict[str, Any]: ...
    @overload
    async def get_config(self, name: str, *, format: TextFormat) -> str: ...
    async def get_config(self, name: str, *, format: str = "json") -> Any:
        """The resolved config of namespace ``name``: a dict for json, text for the others."""
        try:
            resolved = await self._run(ops.read_resolved(name, format=format))
        except (ConnectionError, ServerError) as exc:
            cached = self.cache.fallback(name, format, exc) if self.cache else None
            if cached is None:
                raise
            return cached.value
        if self.cache is not None:
            self.cache.put(name, format, resolved.value, resolved.etag)
        return resolved.value

    async def watch(
        self,
        name: str,
        callback: Callable[[Any], object],
        *,
        format: str = "json",
        wait: float = 30.0,
        initial: bool = True,
    ) -> None:
        """Call ``callback(config)`` now (unless ``initial`` is false) and on every change.

        Runs until cancelled, following changes by long poll; reconnects after network and
        server errors with jittered exponential backoff, resuming from the last ETag it saw.
        ``callback`` may be a coroutine function.
        """
        etag: str | None = None
        failures = 0
        while True:
            try:
                resolved = await self._run(
                    ops.read_resolved(name, format=format, etag=etag, wait=wait if etag else None)
                )
            except (ConnectionError, ServerError, RateLimited) as exc:
                failures += 1
                pause = backoff(failures)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    pause = max(pause, exc.retry_after)
                log.warning("watching %s: %s; reconnecting in %.1fs", name, exc, pause)
                await asyncio.sleep(pause)
                continue
            failures = 0
            if not resolved.changed:
                continue
            first = etag is None
            etag = resolved.etag
            if self.cache is not None:
                self.cache.put(name, format, resolved.value, resolved.etag)
            if initial or not first:
                outcome = callback(resolved.value)
                if inspect.isawaitable(outcome):
                    await outcome
