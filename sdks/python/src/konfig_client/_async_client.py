"""``AsyncKonfig``: the asyncio client, the same surface as ``Konfig`` with ``await``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast, overload

import httpx

from konfig_client import _operations as ops
from konfig_client._analytics import AsyncAnalytics
from konfig_client._async_resources import (
    AsyncAudit,
    AsyncAuth,
    AsyncBackups,
    AsyncConfigs,
    AsyncNamespaces,
    AsyncRevisions,
    AsyncTokens,
    AsyncWebhooks,
)
from konfig_client._async_watch import AsyncChangeListener, AsyncErrorListener, AsyncWatch
from konfig_client._base import (
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
from konfig_client._cache import LastKnownGood
from konfig_client._changes import AsyncChangeRequests, AsyncProtection
from konfig_client._config import Config
from konfig_client._exceptions import ConnectionError, KonfigError, RateLimited, ServerError
from konfig_client._flags import AsyncFlags
from konfig_client._people import AsyncGroups, AsyncSso, AsyncUsers
from konfig_client._watch import Mode

T = TypeVar("T")
log = logging.getLogger("konfig_client")
TextFormat = Literal["yaml", "env", "properties"]


class AsyncKonfig:
    """An asyncio Konfig client, the options of :class:`Konfig`; ``AsyncKonfig.from_env()``
    reads ``KONFIG_URL`` and ``KONFIG_TOKEN``; ``transport=httpx.ASGITransport(app)`` runs it
    in-process."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        fail_fast: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        instance: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.fail_fast = fail_fast
        self.retry = RetryPolicy(attempts=1) if fail_fast else retry or RetryPolicy()
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
        self.protection = AsyncProtection(self)
        self.change_requests = AsyncChangeRequests(self)
        self.flags = AsyncFlags(self._run)
        self.analytics = AsyncAnalytics(self._run)

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None, **options: Any) -> Self:
        """A client for ``KONFIG_URL`` with the API token in ``KONFIG_TOKEN`` (either given
        here wins); ``options`` are the constructor's (``cache_path``, ``fail_fast``, …)."""
        url = url or os.environ.get("KONFIG_URL")
        if not url:
            raise ValueError("no Konfig server: set KONFIG_URL (or pass url=)")
        return cls(url, token or os.environ.get("KONFIG_TOKEN") or None, **options)

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

    async def get(self, name: str) -> Config:
        """The resolved config of namespace ``name``, with typed getters; the last-known-good
        copy (``stale`` true, with a warning) when the server cannot be reached."""
        try:
            resolved = await self._run(ops.read_resolved(name))
        except (ConnectionError, ServerError) as exc:
            stale = self._fallback(name, exc)
            if stale is None:
                raise
            return stale
        config = Config(name, resolved.value, resolved.etag)
        self._remember(config)
        return config

    def _fallback(self, name: str, error: KonfigError) -> Config | None:
        if (
            self.fail_fast
            or self.cache is None
            or not isinstance(error, ConnectionError | ServerError)
        ):
            return None
        cached = self.cache.fallback(name, "json", error)
        if cached is None:
            return None
        return Config.from_cache(name, cached.value, cached.etag, cached.saved_at)

    def _remember(self, config: Config) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(config.namespace, "json", config.values, config.etag)
        except OSError as exc:
            log.warning("could not save the last-known-good file %s: %s", self.cache.path, exc)

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
            usable = self.cache is not None and not self.fail_fast
            cached = self.cache.fallback(name, format, exc) if self.cache and usable else None
            if cached is None:
                raise
            return cached.value
        if self.cache is not None:
            self.cache.put(name, format, resolved.value, resolved.etag)
        return resolved.value

    def watch(
        self,
        name: str,
        on_change: AsyncChangeListener | None = None,
        *,
        on_error: AsyncErrorListener | None = None,
        mode: Mode = "auto",
        wait: float = 30.0,
        idle_timeout: float = 45.0,
    ) -> AsyncWatch:
        """Follow namespace ``name`` in a task on the running loop, as :meth:`Konfig.watch`
        does in a thread: ``on_change(config, previous)`` (maybe a coroutine function) gets the
        current config, then each change. ``watch.stop()`` ends it; ``await watch.wait()``."""
        watch = AsyncWatch(self, name, mode=mode, wait=wait, idle_timeout=idle_timeout)
        if on_change is not None:
            watch.on_change(on_change)
        if on_error is not None:
            watch.on_error(on_error)
        return watch.start()

    async def follow(
        self,
        name: str,
        callback: Callable[[Any], object],
        *,
        format: str = "json",
        wait: float = 30.0,
        initial: bool = True,
    ) -> None:
        """Call ``callback(config)`` now (unless ``initial`` is false) and on every change, in
        any ``format``: the long-poll loop of :meth:`Konfig.follow`, for asyncio.

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
