"""A whole answer written to its connection at once, under uvicorn's httptools protocol.

uvicorn's ``send`` writes an answer's status line and headers when it gets the start message,
and its body when it gets the body: two writes to the socket (two system calls) per answer,
and a Python loop over the headers with two regular-expression searches per header. For the
read path (about 15 us of the server's CPU an answer) those cost a third of it. ``Exchange``
(``konfig.ops.middleware``) holds an answer's start until its body comes, and when the body is
the whole of it hands both here, which writes the very bytes uvicorn's ``send`` would have
written, in one write, and leaves the request's cycle in the state that ``send`` would have.

Only where that is known exactly: uvicorn's httptools protocol (what ``konfig serve`` runs),
whose ``send`` is a bound method of its ``RequestResponseCycle``; an answer that states its
``Content-Length`` (or a 204/304 without a body), on a connection kept alive, not paused by flow
control, not to a ``HEAD``, with uvicorn's access log off. Anything else goes through uvicorn's
own ``send`` as ever (``answer`` returns False), and so does any server other than uvicorn
(the tests' ASGI transport included). The headers are checked as uvicorn checks them, with one
search over all names and one over all values.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from starlette.types import Send

_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl"
# uvicorn's HEADER_RE and HEADER_VALUE_RE: a name or a value it would refuse.
_BAD_NAME = re.compile(rb'[\x00-\x1F\x7F()<>@,;:\[\]={} \t\\"]')
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0A-\x1F\x7F]")
# Headers that change how uvicorn frames or ends the answer: such an answer takes its way.
_FRAMING = frozenset({b"transfer-encoding", b"connection"})
_NO_BODY = (204, 304)
_LINE = b"%s: %s\r\n"


class Wire:
    """Knows uvicorn's httptools cycle, if it is loaded, and writes answers through it."""

    __slots__ = ("_cycle_type", "_defaults", "_send", "_status_lines")

    def __init__(self) -> None:
        self._cycle_type: type | None = None  # learnt once uvicorn has loaded the protocol
        self._send: Any = None
        self._status_lines: dict[int, bytes] = {}
        # uvicorn's default headers (date, server), as a list it replaces once a second, and
        # their lines: rendered once per list.
        self._defaults: tuple[Any, bytes] = (None, b"")

    def cycle_of(self, send: Send) -> Any:
        """uvicorn's cycle behind ``send`` when ``send`` is that cycle's own, else None."""
        cycle = getattr(send, "__self__", None)
        if cycle is None:
            return None
        if type(cycle) is not self._cycle_type and not self._learn(cycle):
            return None
        if getattr(send, "__func__", None) is not self._send:
            return None
        return cycle

    def _learn(self, cycle: Any) -> bool:
        """Is ``cycle`` uvicorn's httptools cycle? (Its class is learnt the first time.)"""
        module = sys.modules.get(_HTTPTOOLS)
        kind = getattr(module, "RequestResponseCycle", None)
        status_lines = getattr(module, "STATUS_LINE", None)
        if kind is None or type(cycle) is not kind or not isinstance(status_lines, dict):
            return False
        self._cycle_type, self._send = kind, kind.__dict__.get("send")
        self._status_lines = status_lines
        return True

    def answer(
        self, cycle: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bool:
        """Write the whole answer (``status``, ``headers``, ``body``) as ``cycle``'s ``send``
        would have in two; False, having done nothing, when that is not known to be the same."""
        if (
            cycle.response_started
            or cycle.disconnected
            or not cycle.keep_alive
            or cycle.access_log
            or cycle.flow.write_paused
            or cycle.scope["method"] == "HEAD"
        ):
            return False
        names = [name.lower() for name, _ in headers]
        values = [value for _, value in headers]
        if not _FRAMING.isdisjoint(names):
            return False
        framed = b"content-length" in names
        if framed:
            length = values[names.index(b"content-length")]  # uvicorn reads the first
            if not length.isdigit() or int(length) != len(body):
                return False  # uvicorn raises its own error
        elif status not in _NO_BODY or body:
            return False  # uvicorn would frame it in chunks
        if _BAD_NAME.search(b"".join(names)) or _BAD_VALUE.search(b"\t".join(values)):
            return False  # uvicorn refuses it
        status_line = self._status_lines.get(status)
        if status_line is None:
            return False
        defaults = cycle.default_headers
        known, rendered = self._defaults
        if defaults is not known:
            fresh = self._render_defaults(defaults)
            if fresh is None:
                return False
            rendered = fresh
        lines = b"".join(map(_LINE.__mod__, zip(names, values, strict=True)))
        cycle.transport.write(b"".join((status_line, rendered, lines, b"\r\n", body)))
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.chunked_encoding = False if framed else None
        cycle.expected_content_length = 0
        cycle.response_complete = True
        cycle.message_event.set()
        cycle.on_response()
        return True

    def _render_defaults(self, defaults: list[tuple[bytes, bytes]]) -> bytes | None:
        """The lines of uvicorn's default headers; None when one of them is not plain."""
        lines: list[bytes] = []
        for name, value in defaults:
            name = name.lower()
            if (
                _BAD_NAME.search(name)
                or _BAD_VALUE.search(value)
                or name in _FRAMING
                or name == b"content-length"
            ):
                return None
            lines += (name, b": ", value, b"\r\n")
        rendered = b"".join(lines)
        self._defaults = (defaults, rendered)
        return rendered
