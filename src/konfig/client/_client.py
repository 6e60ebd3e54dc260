"""``Konfig``: the blocking client."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import httpx

from konfig.client import _operations as ops
from konfig.client._analytics import Analytics
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
from konfig.client._flags import Flags
from konfig.client._people import Groups, Sso, Users
from konfig.client._resources import (
    Audit,
    Auth,
    Backups,
    Configs,
    Namespaces,
    Revisions,
    Tokens,
    Webhooks,
)

T = TypeVar("T")
log = logging.getLogger("konfig.client")
TextFormat = Literal["yaml", "env", "properties"]


class Konfig:
    """A blocking Konfig client: ``Konfig("https://konfig.example.com", token="kfg_…")``.

    ``transport`` swaps the HTTP layer (tests pass an ``httpx.MockTransport`` or a WSGI one);
    ``cache_path`` turns on the last-known-good file that :meth:`get_config` falls back to when
    the server cannot be reached. ``instance`` names this process to the server's usage
    analytics (``X-Konfig-Instance``; default ``$KONFIG_INSTANCE``, else host name and pid).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        transport: httpx.BaseTransport | None = None,
        instance: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self.cache = LastKnownGood(cache_path) if cache_path is not None else None
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers=identity(instance),
        )
        self.auth = Auth(self)
        self.namespaces = Namespaces(self)
        self.configs = Configs(self)
        self.revisions = Revisions(self)
        self.tokens = Tokens(self)
        self.backups = Backups(self)
        self.audit = Audit(self)
        self.users = Users(self)
        self.sso = Sso(self)
        self.groups = Groups(self)
        self.webhooks = Webhooks(self)
        self.flags = Flags(self._run)
        self.analytics = Analytics(self._run)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Konfig:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call) -> httpx.Response:
        attempt = 1
        while True:
            request = build_request(self._http, call, self.token)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                if attempt < self.retry.attempts and may_retry(call, response=None):
                    time.sleep(self.retry.pause(attempt))
                    attempt += 1
                    continue
                raise unreachable(exc, self.url) from exc
            if attempt < self.retry.attempts and may_retry(call, response=response):
                response.close()
                time.sleep(self.retry.pause(attempt))
                attempt += 1
                continue
            return check(response)

    def _run(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(self._send(call))
        except StopIteration as stop:
            return cast(T, stop.value)

    @overload
    def get_config(self, name: str, *, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    def get_config(self, name: str, *, format: TextFormat) -> str: ...
    def get_config(self, name: str, *, format: str = "json") -> Any:
        """The resolved config of namespace ``name``: a dict for json, text for the others."""
        try:
            resolved = self._run(ops.read_resolved(name, format=format))
        except (ConnectionError, ServerError) as exc:
            cached = self.cache.fallback(name, format, exc) if self.cache else None
            if cached is None:
                raise
            return cached.value
        if self.cache is not None:
            self.cache.put(name, format, resolved.value, resolved.etag)
        return resolved.value

    def watch(
        self,
        name: str,
        callback: Callable[[Any], object],
        *,
        format: str = "json",
        wait: float = 30.0,
        stop: threading.Event | None = None,
        initial: bool = True,
    ) -> None:
        """Call ``callback(config)`` now (unless ``initial`` is false) and on every change.

        Blocks until ``stop`` is set, following changes by long poll; it reconnects after
        network and server errors with jittered exponential backoff and resumes from the last
        ETag it saw, so no change is missed. Auth and not-found errors are raised.
        """
        stop = stop or threading.Event()
        etag: str | None = None
        failures = 0
        while not stop.is_set():
            try:
                resolved = self._run(
                    ops.read_resolved(name, format=format, etag=etag, wait=wait if etag else None)
                )
            except (ConnectionError, ServerError, RateLimited) as exc:
                failures += 1
                pause = backoff(failures)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    pause = max(pause, exc.retry_after)
                log.warning("watching %s: %s; reconnecting in %.1fs", name, exc, pause)
                stop.wait(pause)
                continue
            failures = 0
            if not resolved.changed:
                continue
            first = etag is None
            etag = resolved.etag
            if self.cache is not None:
                self.cache.put(name, format, resolved.value, resolved.etag)
            if initial or not first:
                callback(resolved.value)
