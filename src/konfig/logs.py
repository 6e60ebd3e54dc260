"""Structured logs: one JSON object per line on stdout (or readable lines in development).

``configure_logging`` runs once, in ``konfig serve``. It routes the standard library's logging
(uvicorn, alembic, SQLAlchemy, Konfig's own ``logging.getLogger`` calls) through the same
structlog processors, so every line has the same shape and passes the same redaction.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from konfig.middleware import request_id_var

LogFormat = Literal["json", "console"]

# Keys whose values never reach a log line, whoever logs them.
_SENSITIVE_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "secret",
        "secret_key",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "cookie",
        "set-cookie",
        "api_key",
        "encryption_keys",
        "value",
        "values",
    }
)
_SENSITIVE_SUFFIXES = ("password", "_secret", "_token")
REDACTED = "[redacted]"


@dataclass(slots=True)
class _JsonLines:
    """Where ``configure_logging`` sends JSON lines, for ``RequestLog`` to write its own, and
    the access lines waiting to be written there (``flush_access_lines``)."""

    stream: TextIO
    level: int
    pending: list[str] = field(default_factory=list)
    flushing_on: asyncio.AbstractEventLoop | None = None  # where their write is scheduled


_json_lines: _JsonLines | None = None


def _redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in event:
        lowered = key.lower()
        if lowered in _SENSITIVE_KEYS or lowered.endswith(_SENSITIVE_SUFFIXES):
            event[key] = REDACTED
    return event


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    if "request_id" not in event:
        request_id = request_id_var.get()
        if request_id != "-":
            event["request_id"] = request_id
    return event


def _json_dumps(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(
    *, log_format: LogFormat = "json", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Send structlog and standard-library logging to ``stream`` (stdout) in one format."""
    global _json_lines
    flush_access_lines()
    stream = stream or sys.stdout
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    _json_lines = _JsonLines(stream, numeric_level) if log_format == "json" else None
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if log_format == "json":
        # A plain string traceback: a structured one would carry local variables (passwords).
        shared_tail: list[Processor] = [structlog.processors.format_exc_info, _redact]
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        shared_tail = [_redact]
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )

    structlog.configure(
        processors=[*shared, *shared_tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *shared_tail,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric_level)
    # uvicorn installs its own handlers and levels unless told not to (a uvicorn.Config made
    # earlier in the process leaves them behind); make sure its lines come here, at this level.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    # httpx logs every URL it calls at INFO, query string included (webhook URLs carry secrets).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))


def reset_logging() -> None:
    """Undo ``configure_logging`` (for tests)."""
    global _json_lines
    flush_access_lines()
    _json_lines = None
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def flush_access_lines() -> None:
    """Write the access lines ``RequestLog`` holds (it writes them in batches) and flush: the
    dispatcher calls this when the app stops, and it runs when the process exits."""
    lines = _json_lines
    if lines is None or not lines.pending:
        return
    pending = lines.pending
    lines.pending = []
    lines.flushing_on = None
    lines.stream.write("\n".join(pending) + "\n")
    lines.stream.flush()


atexit.register(flush_access_lines)


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name``, in the format configured now."""
    logger: FilteringBoundLogger = structlog.get_logger().bind(logger=name)
    return logger


class RequestLog:
    """The access line of each request (``konfig.ops.middleware.Exchange``).

    It is written for every answer, the read path's included, where structlog's processor chain
    (about 18 us a line) would cost as much as the answer itself. With JSON logs configured, the
    line is rendered here in the same shape as every other (``logger``, the fields, ``event``,
    ``level``, ``timestamp``), in a few microseconds; its fields are the caller's fixed set, none
    of them sensitive, so there is nothing to redact. Otherwise it goes through structlog.

    With JSON logs, the lines are written in batches, every ``FLUSH_SECONDS`` at most: a busy
    replica's lines share one write (with ``PYTHONUNBUFFERED``, as containers often run, each
    line was a system call of its own beside the answer's, and an unbuffered stream is what a
    log collector reads), none waits longer than that, and the rest are written when the app
    stops or the process exits (``flush_access_lines``). Other log lines are written at once,
    so an access line may follow a line logged after it (each carries its timestamp).
    """

    FLUSH_SECONDS = 0.05

    def __init__(self, name: str) -> None:
        self.name = name
        self.structured = get_logger(name)
        self._second = -1
        self._stamp = ""

    def write(self, event: str, line: dict[str, Any], *, error: bool) -> None:
        """Log ``event`` with the fields of ``line`` (a dict this takes over: the line is built
        in it), at level error or info."""
        lines = _json_lines
        if lines is None:
            (self.structured.error if error else self.structured.info)(event, **line)
            return
        if (logging.ERROR if error else logging.INFO) < lines.level:
            return
        line["logger"] = self.name
        line["event"] = event
        line["level"] = "error" if error else "info"
        line["timestamp"] = self._timestamp()
        lines.pending.append(orjson.dumps(line, default=str).decode())
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to wait for: now
            flush_access_lines()
            return
        if lines.flushing_on is not loop:  # none scheduled (or on a loop since gone)
            lines.flushing_on = loop
            loop.call_later(self.FLUSH_SECONDS, flush_access_lines)

    def _timestamp(self) -> str:
        """Now, as structlog's ISO UTC stamps read (``2026-01-02T03:04:05.678901Z``)."""
        nanoseconds = time.time_ns()
        second = nanoseconds // 1_000_000_000
        if second != self._second:  # the date and time formatted once a second
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return "%s.%06dZ" % (self._stamp, nanoseconds // 1000 % 1_000_000)  # noqa: UP031 (faster)
