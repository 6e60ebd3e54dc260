"""``Konfig``: the blocking client."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast, overload

import httpx

from konfig_client import _operations as ops
from konfig_client._analytics import Analytics
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
from konfig_client._changes import ChangeRequests, Protection
from konfig_client._config import Config
from konfig_client._exceptions import ConnectionError, KonfigError, RateLimited, ServerError
from konfig_client._flags import Flags
from konfig_client._people import Groups, Sso, Users
from konfig_client._resources import (
    Audit,
    Auth,
    Backups,
    Configs,
    Namespaces,
    Revisions,
    Tokens,
    Webhooks,
)
from konfig_client._watch import ChangeListener, ErrorListener, Mode, Watch

T = TypeVar("T")
log = logging.getLogger("konfig_client")
TextFormat = Literal["yaml", "env", "properties"]


class Konfig:
    """A blocking Konfig client: ``Konfig("https://konfig.example.com", token="kfg_…")``, or
    ``Konfig.from_env()`` (``KONFIG_URL``, ``KONFIG_TOKEN``).

    ``cache_path`` turns on the last-known-good file that :meth:`get` (and :meth:`watch`) fall
    back to when the server cannot be reached; ``fail_fast`` turns off both that fallback and
    retries, for a service that must not start without its config. ``transport`` swaps the HTTP
    layer (an ``httpx.WSGITransport``, say). ``instance`` names this process to the server's
    usage analytics (``X-Konfig-Instance``; default ``$KONFIG_INSTANCE``, else host name and pid).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        fail_fast: bool = False,
        transport: httpx.BaseTransport | None = None,
        instance: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.fail_fast = fail_fast
        self.retry = RetryPolicy(attempts=1) if fail_fast else retry or RetryPolicy()
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
        self.protection = Protection(self)
        self.change_requests = ChangeRequests(self)
        self.flags = Flags(self._run)
        self.analytics = Analytics(self._run)

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None, **options: Any) -> Self:
        """A client for ``KONFIG_URL`` with the API token in ``KONFIG_TOKEN`` (either given
        here wins); ``options`` are the constructor's (``cache_path``, ``fail_fast``, …)."""
        url = url or os.environ.get("KONFIG_URL")
        if not url:
            raise ValueError("no Konfig server: set KONFIG_URL (or pass url=)")
        return cls(url, token or os.environ.get("KONFIG_TOKEN") or None, **options)

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

    def get(self, name: str) -> Config:
        """The resolved config of namespace ``name``, with typed getters. When the server cannot
        be reached (or answers 5xx) and the last-known-good file holds it, that copy, with
        ``stale`` true and a warning (logged, and a :class:`StaleConfigWarning`)."""
        try:
            resolved = self._run(ops.read_resolved(name))
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
    def get_config(self, name: str, *, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    def get_config(self, name: str, *, format: TextFormat) -> str: ...
    def get_config(self, name: str, *, format: str = "json") -> Any:
        """The resolved config of namespace ``name``: a dict for json, text for the others."""
        try:
            resolved = self._run(ops.read_resolved(name, format=format))
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
        on_change: ChangeListener | None = None,
        *,
        on_error: ErrorListener | None = None,
        mode: Mode = "auto",
        wait: float = 30.0,
        idle_timeout: float = 45.0,
    ) -> Watch:
        """Follow namespace ``name`` in a background thread: ``on_change(config, previous)``
        gets the current config (``previous`` None), then each change.

        Server-sent events resumed with ``Last-Event-ID``, long polls (``wait`` seconds each)
        where no stream can be had, or ``mode="sse"``/``"poll"`` to choose. Failures that waiting
        may fix are retried with jittered backoff, each reported to ``on_error(error, True)``;
        the first config comes from the last-known-good file when the server is down. The
        others end the watch: ``watch.wait()`` raises them. ``watch.stop()`` ends it.
        """
        watch = Watch(self, name, mode=mode, wait=wait, idle_timeout=idle_timeout)
        if on_change is not None:
            watch.on_change(on_change)
        if on_error is not None:
            watch.on_error(on_error)
        return watch.start()

    def follow(
        self,
        name: str,
        callback: Callable[[Any], object],
        *,
        format: str = "json",
        wait: float = 30.0,
        stop: threading.Event | None = None,
        initial: bool = True,
    ) -> None:
        """Call ``callback(config)`` now (unless ``initial`` is false) and on every change, in
        any ``format`` (``env``, ``yaml``, ``properties`` as text): the blocking long-poll loop
        ``konfig watch`` and ``konfig run --watch`` use. For JSON, :meth:`watch` does more.

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
