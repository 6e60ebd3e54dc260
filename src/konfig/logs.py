"""Structured logs: one JSON object per line on stdout (or readable lines in development).

``configure_logging`` runs once, in ``konfig serve``. It routes the standard library's logging
(uvicorn, alembic, SQLAlchemy, Konfig's own ``logging.getLogger`` calls) through the same
structlog processors, so every line has the same shape and passes the same redaction.
"""

from __future__ import annotations

import logging
import sys
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
    stream = stream or sys.stdout
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
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
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name``, in the format configured now."""
    logger: FilteringBoundLogger = structlog.get_logger().bind(logger=name)
    return logger
