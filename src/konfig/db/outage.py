"""The database out of reach: a 503 with ``Retry-After``, and one log line per kind of failure.

A database that cannot be reached fails every request that needs it, hundreds a second; the
answer says to come back (503, not a 500 that reads as a bug), and the log says what is wrong
once a minute per kind of failure instead of a traceback per request.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

from sqlalchemy import exc as sa

from konfig.errors import ServiceUnavailable

log = logging.getLogger("konfig.db")

RETRY_AFTER_SECONDS = 5
LOG_INTERVAL_SECONDS = 60.0
MESSAGE = "The database is unavailable: try again shortly"

# What a lost or refused connection surfaces as, wrapped by SQLAlchemy…
_UNREACHABLE = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,  # the pool had no connection to give in time
)
# … or raw (asyncpg connecting, a reset socket): only when raised from the database's code.
_NETWORK = (ConnectionError, TimeoutError, socket.gaierror)
_DATABASE_CODE = ("sqlalchemy.", "asyncpg.", "aiomysql.", "pymysql.", "aiosqlite.", "konfig.db.")
# MariaDB's driver (PyMySQL) calls nearly every server error "operational", a statement the
# server refused included; only its client's own errors (2000-2999: cannot connect, server gone,
# connection lost) and these server ones mean the database is out of reach: too many
# connections, shutting down, connection killed, disconnected for inactivity.
_MARIADB_OUT_OF_REACH = frozenset({1040, 1053, 1927, 4031})


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def unreachable(error: BaseException) -> str | None:
    """The kind of failure (its innermost exception's class) when ``error`` means the database
    cannot be reached; None for any other error."""
    chain = list(_chain(error))
    if not any(
        (isinstance(link, _UNREACHABLE) and not _refused_by_mariadb(link))
        or (isinstance(link, sa.DBAPIError) and link.connection_invalidated)
        or (isinstance(link, _NETWORK) and _raised_by_database(link))
        for link in chain
    ):
        return None
    return type(chain[-1]).__name__


def _refused_by_mariadb(error: BaseException) -> bool:
    """A MariaDB server that answered: it refused a statement, it is not out of reach."""
    driver_error = getattr(error, "orig", None)
    if driver_error is None or not type(driver_error).__module__.startswith("pymysql."):
        return False
    code = driver_error.args[0] if driver_error.args else None
    if not isinstance(code, int):
        return False
    return not (2000 <= code < 3000 or code in _MARIADB_OUT_OF_REACH)


def _raised_by_database(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith(_DATABASE_CODE):
            return True
        frame = frame.tb_next
    return False


class OutageLog:
    """Logs the first failure of each kind per interval: one line, no traceback. Only the
    exception's class is named: SQLAlchemy's messages quote statements and their parameters."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}

    def report(self, kind: str) -> None:
        now = time.monotonic()
        last = self.last.get(kind)
        if last is not None and now - last < self.interval:
            return
        self.last[kind] = now
        log.error(
            "the database is unavailable (%s): answering 503 (logged once per %g s per kind)",
            kind,
            self.interval,
        )


def unavailable(error: BaseException, outages: OutageLog | None) -> ServiceUnavailable | None:
    """The 503 to answer for ``error``, logged; None when it is not the database out of reach."""
    kind = unreachable(error)
    if kind is None:
        return None
    if outages is not None:
        outages.report(kind)
    return ServiceUnavailable(MESSAGE, {"retry_after": RETRY_AFTER_SECONDS}, headers=retry_after())


def retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}
