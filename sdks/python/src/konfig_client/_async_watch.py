"""``AsyncWatch``: :class:`~konfig_client.Watch` for asyncio, a task on the running loop.

The same protocol and rules (``_watch`` holds what both share): server-sent events resumed with
``Last-Event-ID``, long polls where no stream can be had, jittered backoff for what waiting may
fix, the last-known-good file when the server is down at the start. Listeners may be coroutine
functions; they are awaited in turn.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import httpx

from konfig_client import _operations as ops
from konfig_client._base import backoff, unreachable
from konfig_client._config import Config
from konfig_client._exceptions import KonfigError, RateLimited, ServerError, error_from_response
from konfig_client._watch import (
    EventParser,
    Mode,
    decode_event,
    is_stream,
    refused,
    stream_request,
    transient,
)

if TYPE_CHECKING:
    from konfig_client._async_client import AsyncKonfig

log = logging.getLogger("konfig_client")

AsyncChangeListener = Callable[[Config, "Config | None"], object]
AsyncErrorListener = Callable[[KonfigError, bool], object]


class AsyncWatch:
    """A namespace followed by an :class:`AsyncKonfig`; made by ``konfig.watch(name, …)``
    inside a running event loop. ``stop()`` cancels it; ``await watch.wait()`` until it ends
    (raising the error that ended it)."""

    def __init__(
        self,
        client: AsyncKonfig,
        name: str,
        *,
        mode: Mode = "auto",
        wait: float = 30.0,
        idle_timeout: float = 45.0,
    ) -> None:
        if mode not in ("auto", "sse", "poll"):
            raise ValueError("mode must be auto, sse or poll")
        self.name = name
        self.current: Config | None = None
        self.error: KonfigError | None = None
        self.mode: Literal["sse", "poll"] = "poll" if mode == "poll" else "sse"
        self._client = client
        self._requested = mode
        self._wait = wait
        self._idle_timeout = idle_timeout
        self._change_listeners: list[AsyncChangeListener] = []
        self._error_listeners: list[AsyncErrorListener] = []
        self._failures = 0
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def on_change(self, listener: AsyncChangeListener) -> AsyncWatch:
        """Add a change listener: ``listener(config, previous)``, maybe a coroutine function."""
        self._change_listeners.append(listener)
        return self

    def on_error(self, listener: AsyncErrorListener) -> AsyncWatch:
        """Add an error listener: ``listener(error, retrying)``."""
        self._error_listeners.append(listener)
        return self

    def start(self) -> AsyncWatch:
        """Start following on the running loop (``AsyncKonfig.watch`` does)."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"konfig-watch {self.name}"
        )
        return self

    def stop(self) -> None:
        """Stop following: cancels the stream or long poll; no listener is called after this."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def wait(self) -> None:
        """Until the watch has ended: returns once stopped, raises the error that ended it."""
        if self._task is None:
            return
        await asyncio.wait([self._task])  # a stopped (cancelled) task is no error here
        if self.error is not None and not self._stopped:
            raise self.error

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        await self.wait()

    async def _run(self) -> None:
        try:
            await self._follow()
        except Exception as exc:  # a bug here must end the watch visibly, not silently
            if self._stopped:
                return  # a stopped watch whose client was closed under its last request
            log.exception("watching %s failed", self.name)
            self.error = ServerError(f"watching {self.name} failed: {exc}", code="INTERNAL")

    async def _follow(self) -> None:
        while not self._stopped:
            try:
                if self.mode == "sse" and not await self._stream():
                    self.mode = "poll"  # no event stream here (a proxy, an old server)
                    continue
                if self.mode == "poll":
                    await self._poll()
                pause = backoff(1)  # the server closed the stream (a restart): reconnect soon
            except KonfigError as exc:
                if not transient(exc) or (self._client.fail_fast and self.current is None):
                    self.error = exc
                    await self._report(exc, retrying=False)
                    return
                self._failures += 1
                if self.current is None:
                    stale = self._client._fallback(self.name, exc)
                    if stale is not None:
                        await self._emit(stale)
                await self._report(exc, retrying=True)
                pause = backoff(self._failures)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    pause = max(pause, exc.retry_after)
            await asyncio.sleep(pause)

    def _fresh_etag(self) -> str | None:
        current = self.current
        return current.etag if current is not None and not current.stale else None

    async def _poll(self) -> None:
        while not self._stopped:
            etag = self._fresh_etag()
            wait = math.ceil(self._wait) if etag else None
            resolved = await self._client._run(ops.read_resolved(self.name, etag=etag, wait=wait))
            self._failures = 0
            if resolved.changed and isinstance(resolved.value, dict):
                config = Config(self.name, resolved.value, resolved.etag)
                self._client._remember(config)
                await self._emit(config)

    async def _stream(self) -> bool:
        client = self._client
        request = stream_request(
            client._http,
            client.token,
            self.name,
            self._fresh_etag(),
            timeout=client.timeout,
            idle_timeout=self._idle_timeout,
        )
        try:
            response = await client._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise unreachable(exc, client.url) from exc
        try:
            if refused(response):
                await response.aread()
                raise error_from_response(response)
            if not is_stream(response, self.name, self._requested):
                return False
            self._failures = 0
            parser = EventParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                config = decode_event(self.name, event) if event is not None else None
                if config is not None:
                    self._client._remember(config)
                    await self._emit(config)
            return True
        except httpx.ReadTimeout as exc:
            raise ServerError(
                f"{self.name}: the event stream went silent", code="INTERNAL"
            ) from exc
        except httpx.TransportError as exc:
            raise unreachable(exc, client.url) from exc
        finally:
            await response.aclose()

    async def _emit(self, config: Config) -> None:
        previous = self.current
        if (
            previous is not None
            and not previous.stale
            and not config.stale
            and previous.etag == config.etag
        ):
            return  # the same content again (a reconnect that raced a change)
        self.current = config
        for listener in list(self._change_listeners):
            if self._stopped:
                return
            try:
                outcome = listener(config, previous)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("a change listener of %s failed", self.name)

    async def _report(self, error: KonfigError, *, retrying: bool) -> None:
        then = "retrying" if retrying else "the watch ends"
        log.warning("watching %s: %s: %s; %s", self.name, error.code, error, then)
        for listener in list(self._error_listeners):
            try:
                outcome = listener(error, retrying)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("an error listener of %s failed", self.name)
