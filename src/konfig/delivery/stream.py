"""An event stream between changes, and its changes written straight to its connection.

A change watched by thousands of streams is sent by one loop: when the cache has the new state
(``ResolvedCache._refreshed``), it hands it to every ``EventStream`` parked on the old one,
which writes the event's bytes, framed once per state and shared by every stream, to its
connection's transport, and moves on to watch the new state. No stream's task is woken and no
ASGI ``send`` runs per stream: those cost several times the write itself.

Only where the framing is known exactly: uvicorn's httptools protocol (what ``konfig serve``
runs), whose ``send`` is a bound method of its ``RequestResponseCycle``, holding the transport,
on a response it frames with chunked transfer-encoding. For a body message with ``more_body``
that cycle writes one chunk and changes none of its own state, so a chunk written here is what
its ``send`` would have written. Everything else goes the ordinary way, the stream's task woken
to send through ASGI: any other server or protocol (h11, an ASGI test transport), a client gone,
a transport whose buffer is over the limit (a slow reader: its task then waits in uvicorn's
flow control, as every stream did before, holding up no other), and a state the caller is no
longer admitted to (the task sends the error). The stream's start and end always go through
ASGI, so the cycle's state stays right, and a direct write only ever happens while the stream's
task is parked waiting for a change, never beside an ASGI send of its own.

The heartbeat is written the same way (``EventStream.beat``, with the task's own token check
done in place), and a stream, like a long poll, hears of its client leaving from the connection
(``Connection.when_gone``) rather than from a task reading ``receive``: the read path's share
of an idle stream is then two coroutines of its task and a few small objects.

Between ``konfig serve``'s wrappers (``Exchange``, CORS) and this, only the start of the
answer is touched: they pass body messages on unchanged, which is what makes skipping them safe.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from konfig.analytics.recorder import ALIVE, PUSHED_STATE
from konfig.delivery.cache import Resolved, Wake
from konfig.errors import KonfigError

if TYPE_CHECKING:
    from konfig.delivery.handler import Caller, Client, ReadPath

# Where ``konfig.dispatch`` keeps the server's own ``send`` in the scope, for the read path.
SERVER_SEND = "konfig.server_send"
# Bytes a stream's transport may hold unsent before its changes go through ASGI (and so wait
# for the reader): uvicorn's own high-water mark.
BUFFER_LIMIT = 65536
_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl"
_TRANSPORT = ("write", "is_closing", "get_write_buffer_size")
_PING = b": ping\n\n"
PING_CHUNK = b"%x\r\n" % len(_PING) + _PING + b"\r\n"  # the heartbeat, framed as uvicorn would


class Connection:
    """A stream's connection under uvicorn's httptools protocol: its cycle and transport."""

    __slots__ = ("cycle", "transport")

    def __init__(self, cycle: Any, transport: Any) -> None:
        self.cycle = cycle  # uvicorn's RequestResponseCycle: its attributes are read, not typed
        self.transport: asyncio.WriteTransport = transport

    def writable(self) -> bool:
        """May a chunk be written now: the response is chunked, under way, and keeping up?"""
        cycle = self.cycle
        transport = self.transport
        return (
            cycle.chunked_encoding is True
            and cycle.response_started
            and not cycle.response_complete
            and not cycle.disconnected
            and not cycle.flow.write_paused
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= BUFFER_LIMIT
        )

    def when_gone(self, gone: Callable[[], None]) -> Callable[[], None] | None:
        """Have ``gone`` called once the client has gone, without a task reading ``receive``
        for it (a task and its two coroutines are a tenth of an idle stream's memory); returns
        what stops watching, or None when the request is not read whole yet (a body to come:
        read ``receive`` then).

        uvicorn sets the cycle's ``message_event`` when the connection is lost, which is what its
        ``receive`` waits for once the request is read; here ``Event.wait`` is driven by hand to
        its first suspension, so the future it waits on gets ``gone`` as its callback."""
        cycle = self.cycle
        if cycle.more_body:
            return None
        if cycle.disconnected:
            gone()
            return _nothing
        cycle.flow.resume_reading()  # as its ``receive`` does: a client's close must be read
        event: asyncio.Event = cycle.message_event
        event.clear()  # set by the request's end, which nobody reads: only a close sets it now
        waiting = event.wait()
        future = waiting.send(None)  # Event.wait's own future, in the event's waiters
        future.add_done_callback(lambda _: gone())
        return waiting.close  # closing it takes the future out of the waiters: no call after


def _nothing() -> None:
    pass


def connection_of(send: Any) -> Connection | None:
    """The connection behind ``send`` when it is uvicorn's httptools cycle's own, else None."""
    module = sys.modules.get(_HTTPTOOLS)
    cycle = getattr(send, "__self__", None)
    if module is None or cycle is None:
        return None
    kind = getattr(module, "RequestResponseCycle", None)
    if kind is None or type(cycle) is not kind:
        return None
    if getattr(send, "__func__", None) is not kind.__dict__.get("send"):
        return None
    transport = getattr(cycle, "transport", None)
    # uvloop's transports are not asyncio.Transport subclasses: ask for what is used.
    if not all(hasattr(transport, name) for name in _TRANSPORT) or cycle.scope["method"] == "HEAD":
        return None
    return Connection(cycle, transport)


def gone_hook(scope: Any) -> Callable[[Callable[[], None]], Callable[[], None] | None] | None:
    """What tells a long poll or stream waiting on this request's connection that its client
    has gone, when the server's connection can (``Connection.when_gone``); None otherwise."""
    connection = connection_of(scope.get(SERVER_SEND))
    return None if connection is None else connection.when_gone


class EventStream:
    """One server-sent-event stream's state: the caller, the state it watches, the ETag it last
    sent, and its connection when changes can be written to it directly."""

    __slots__ = ("caller", "client", "connection", "last", "name", "read_path", "resolved")

    def __init__(
        self,
        read_path: ReadPath,
        caller: Caller,
        name: str,
        resolved: Resolved,
        last: str | None,
        client: Client,
        connection: Connection | None,
    ) -> None:
        self.read_path = read_path
        self.caller = caller
        self.name = name
        self.resolved = resolved
        self.last = last
        self.client = client
        self.connection = connection

    def follow(
        self, resolved: Resolved, waiter: asyncio.Future[Wake], shared: dict[Any, Any]
    ) -> bool:
        """Send ``resolved`` (when it shows something new) straight to the connection and
        watch it from now on, the stream's task left asleep on ``waiter``; False when that
        cannot be done here, and the task must be woken to do it. What a caller's token (or
        login) may see of the state is worked out once per change for all its streams
        (``shared``): thousands of streams usually share a few."""
        connection = self.connection
        if connection is None or waiter.done() or not connection.writable():
            return False
        caller = self.caller
        grant = caller.record or caller.user  # the same object for every stream of a token
        seen = shared.get(id(grant))
        if seen is None:
            try:
                reveal = caller.admit(self.name, resolved)  # an include added since: a 403
            except KonfigError:
                seen = shared[id(grant)] = (False, "", b"")
            else:
                etag = resolved.shown(reveal)[1]
                seen = shared[id(grant)] = (reveal, etag, resolved.event_chunk(reveal))
        reveal, etag, chunk = seen
        if not chunk:
            return False  # the task sends the refusal
        if etag != self.last:
            connection.transport.write(chunk)
            self.last = etag
            read_path = self.read_path
            read_path.counts.events_direct += 1
            if reveal and resolved.resolution.secrets:
                read_path.count_reveal(caller, self.name, resolved)
            analytics = read_path.analytics
            if analytics.enabled:
                who, sdk = self.client
                analytics.record(
                    caller.tenant_id, caller.actor, self.name, who, sdk, resolved, PUSHED_STATE
                )
        self.resolved = resolved
        return True

    def beat(self) -> bool:
        """Write the heartbeat straight to the connection, when the caller would still be let in
        as the stream's task would check (an API token in the cache, unexpired, still reading the
        namespace); False when the task must be woken to beat (a login, a token to look up
        again or refuse, a connection that cannot be written now)."""
        connection = self.connection
        record = self.caller.record
        if connection is None or record is None or not connection.writable():
            return False
        if record.fresh_until < time.monotonic() or not record.may_read(self.name):
            return False
        read_path = self.read_path
        try:
            read_path.tokens.admit(record)  # expired, or refused since: the task says so
        except KonfigError:
            return False
        connection.transport.write(PING_CHUNK)
        analytics = read_path.analytics
        if analytics.enabled:  # still connected, still holding its state
            caller = self.caller
            who, sdk = self.client
            analytics.record(
                caller.tenant_id, caller.actor, self.name, who, sdk, self.resolved, ALIVE
            )
        return True
