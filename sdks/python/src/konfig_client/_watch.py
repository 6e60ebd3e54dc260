"""``Watch``: a namespace followed in a background thread, the current config then each change.

It streams server-sent events (``GET /config/{name}/events``) and resumes them with
``Last-Event-ID`` (the last ETag seen), so a reconnect neither misses nor repeats a change. Where
no stream can be had (a proxy's 404 page, a wrong content type) it long-polls instead
(``?wait=`` with ``If-None-Match``). Network errors, 5xx and 429 are retried with jittered
exponential backoff (``Retry-After`` honoured); a revoked token, a lost permission or a deleted
namespace end the watch with that error. The JavaScript and Go SDKs' watches work the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from konfig_client import _operations as ops
from konfig_client._base import API, Call, backoff, build_request, quote_name, unreachable
from konfig_client._config import Config
from konfig_client._exceptions import (
    ConnectionError,
    KonfigError,
    NotFound,
    RateLimited,
    ServerError,
    error_for,
    error_from_response,
)

if TYPE_CHECKING:
    from konfig_client._client import Konfig

log = logging.getLogger("konfig_client")

Mode = Literal["auto", "sse", "poll"]
ChangeListener = Callable[[Config, "Config | None"], object]
ErrorListener = Callable[[KonfigError, bool], object]
# Statuses that, without Konfig's JSON error body, mean "no event stream here".
NO_STREAM = frozenset({404, 405, 406, 501})


@dataclass(frozen=True)
class ServerSentEvent:
    type: str
    data: str
    id: str | None


class EventParser:
    """A ``text/event-stream`` body read line by line, by the WHATWG rules: ``feed`` answers
    the event a blank line completes (a comment line is a heartbeat, and completes none)."""

    def __init__(self) -> None:
        self._kind = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if line == "":
            event = None
            if self._data:
                event = ServerSentEvent(self._kind or "message", "\n".join(self._data), self._id)
            self._kind, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._kind = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._id = value
        return None


def parse_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """The events of a ``text/event-stream`` body given line by line."""
    parser = EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event


def decode_event(name: str, event: ServerSentEvent) -> Config | None:
    """The config a ``change`` event carries; raises what an ``error`` or ``deleted`` event
    says; None for any other event."""
    if event.type == "change":
        body = _json_object(event.data)
        if not isinstance(body.get("config"), dict):
            return None
        etag = body.get("etag") if isinstance(body.get("etag"), str) else f'"{event.id}"'
        return Config(name, body["config"], etag)
    if event.type == "error":
        body = _json_object(event.data)
        code = body.get("code") if isinstance(body.get("code"), str) else "INTERNAL"
        message = body.get("message") if isinstance(body.get("message"), str) else "error"
        raise error_for(str(code), str(message))
    if event.type == "deleted":
        raise NotFound(f"namespace {name} was deleted", code="NOT_FOUND", status_code=404)
    return None


def refused(response: httpx.Response) -> bool:
    """Whether an answer to an event-stream request is Konfig's own refusal (JSON), rather than
    a proxy's or an old server's page for a path it does not know."""
    content_type = response.headers.get("Content-Type", "")
    foreign = response.status_code in NO_STREAM and not content_type.startswith("application/json")
    return response.status_code >= 400 and not foreign


def is_stream(response: httpx.Response, name: str, requested: Mode) -> bool:
    """Whether the answer is an event stream; when it is not, False (long-poll instead) or,
    with ``mode="sse"`` asked for, the error that says so."""
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith("text/event-stream"):
        return True
    if requested == "sse":
        raise ServerError(
            f"{name}: no event stream ({content_type or 'no content type'})",
            code="INTERNAL",
            status_code=response.status_code,
        )
    return False


def stream_request(
    http: httpx.Client | httpx.AsyncClient,
    token: str | None,
    name: str,
    etag: str | None,
    *,
    timeout: float,
    idle_timeout: float,
) -> httpx.Request:
    """``GET …/events``, resumed after ``etag``; a stream silent for ``idle_timeout`` (no
    event, no heartbeat) times out, to be reopened."""
    headers = {"Accept": "text/event-stream"}
    if etag:
        headers["Last-Event-ID"] = etag
    call = Call("GET", f"{API}/config/{quote_name(name)}/events", headers=headers)
    request = build_request(http, call, token)
    request.extensions["timeout"] = httpx.Timeout(timeout, read=idle_timeout).as_dict()
    return request


def transient(error: KonfigError) -> bool:
    """Whether waiting may fix it: the network, the server's 5xx, a rate limit."""
    return isinstance(error, ConnectionError | ServerError | RateLimited)


class Watch:
    """A namespace followed by a :class:`Konfig` client; made by ``konfig.watch(name, …)``.

    Change listeners get ``(config, previous)``: the current config first (``previous`` is
    None), then each change. Error listeners get ``(error, retrying)`` for every failure;
    ``retrying`` is false for the one that ends the watch. Listeners run on the watch's thread.
    """

    def __init__(
        self,
        client: Konfig,
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
        self._change_listeners: list[ChangeListener] = []
        self._error_listeners: list[ErrorListener] = []
        self._failures = 0
        self._stopped = threading.Event()
        self._done = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name=f"konfig-watch {name}", daemon=True)

    def on_change(self, listener: ChangeListener) -> Watch:
        """Add a change listener: ``listener(config, previous)``."""
        self._change_listeners.append(listener)
        return self

    def on_error(self, listener: ErrorListener) -> Watch:
        """Add an error listener: ``listener(error, retrying)``."""
        self._error_listeners.append(listener)
        return self

    def start(self) -> Watch:
        """Start following (``Konfig.watch`` does); listeners added before miss nothing."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following: no listener is called after this. Closes an open event stream at
        once; a long poll in flight is left to end on its own, in the background."""
        self._stopped.set()
        self._done.set()
        response = self._response
        if response is not None:
            _shut(response)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the watch has ended (``stop()``, or an error it cannot retry, which is
        raised here); False when ``timeout`` passed first."""
        if not self._done.wait(timeout):
            return False
        if self.error is not None and not self._stopped.is_set():
            raise self.error
        return True

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as exc:  # a bug here must end the watch visibly, not silently
            if self._stopped.is_set():
                return  # a stopped watch whose client was closed under its last request
            log.exception("watching %s failed", self.name)
            self.error = ServerError(f"watching {self.name} failed: {exc}", code="INTERNAL")
        finally:
            self._done.set()

    def _follow(self) -> None:
        while not self._stopped.is_set():
            try:
                if self.mode == "sse" and not self._stream():
                    self.mode = "poll"  # no event stream here (a proxy, an old server)
                    continue
                if self.mode == "poll":
                    self._poll()
                pause = backoff(1)  # the server closed the stream (a restart): reconnect soon
            except KonfigError as exc:
                if self._stopped.is_set():
                    return
                if not transient(exc) or (self._client.fail_fast and self.current is None):
                    self.error = exc
                    self._report(exc, retrying=False)
                    return
                self._failures += 1
                if self.current is None:
                    stale = self._client._fallback(self.name, exc)
                    if stale is not None:
                        self._emit(stale)
                self._report(exc, retrying=True)
                pause = backoff(self._failures)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    pause = max(pause, exc.retry_after)
            self._stopped.wait(pause)

    def _fresh_etag(self) -> str | None:
        current = self.current
        return current.etag if current is not None and not current.stale else None

    def _poll(self) -> None:
        """Long polls until stopped; raises what fails."""
        while not self._stopped.is_set():
            etag = self._fresh_etag()
            wait = math.ceil(self._wait) if etag else None
            resolved = self._client._run(ops.read_resolved(self.name, etag=etag, wait=wait))
            self._failures = 0
            if resolved.changed and isinstance(resolved.value, dict):
                config = Config(self.name, resolved.value, resolved.etag)
                self._client._remember(config)
                self._emit(config)

    def _stream(self) -> bool:
        """One event stream, to its end; False when the server offers none."""
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
            response = client._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise unreachable(exc, client.url) from exc
        self._response = response
        try:
            if self._stopped.is_set():
                return True
            return self._read_stream(response)
        except httpx.ReadTimeout as exc:
            raise ServerError(
                f"{self.name}: the event stream went silent", code="INTERNAL"
            ) from exc
        except httpx.TransportError as exc:
            raise unreachable(exc, client.url) from exc
        finally:
            self._response = None
            response.close()

    def _read_stream(self, response: httpx.Response) -> bool:
        if refused(response):
            response.read()
            raise error_from_response(response)
        if not is_stream(response, self.name, self._requested):
            return False
        self._failures = 0
        for event in parse_events(response.iter_lines()):
            if self._stopped.is_set():
                break
            config = decode_event(self.name, event)
            if config is not None:
                self._client._remember(config)
                self._emit(config)
        return True

    def _emit(self, config: Config) -> None:
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
            if self._stopped.is_set():
                return
            try:
                listener(config, previous)
            except Exception:
                log.exception("a change listener of %s failed", self.name)

    def _report(self, error: KonfigError, *, retrying: bool) -> None:
        then = "retrying" if retrying else "the watch ends"
        log.warning("watching %s: %s: %s; %s", self.name, error.code, error, then)
        for listener in list(self._error_listeners):
            try:
                listener(error, retrying)
            except Exception:
                log.exception("an error listener of %s failed", self.name)


def _json_object(data: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _shut(response: httpx.Response) -> None:
    """Wake a thread blocked reading ``response``: shut its socket down (closing alone does not
    interrupt a read in progress on Linux)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
