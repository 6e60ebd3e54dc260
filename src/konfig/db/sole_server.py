"""SQLite serves one server process: a second ``konfig serve`` on the same file refuses to start.

Each server keeps caches of what it served and hears of changes from other replicas through
PostgreSQL or Redis; two processes on one SQLite file would each serve the other's stale state.
So ``konfig serve`` holds an exclusive, non-blocking ``flock`` on ``<database>.server.lock``
for its whole life. The kernel releases it when the process ends, however it ends (a crash or
``kill -9`` included), so a restart is never refused by a lock left behind. The file holds the
holder's process id, for the refusal to name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from konfig.db.engine import sqlite_path


class DatabaseServedElsewhere(RuntimeError):
    """Another server process already serves this SQLite database."""


def lock_path(database: Path) -> Path:
    return database.with_name(f"{database.name}.server.lock")


@contextlib.contextmanager
def sole_server(url: str) -> Iterator[None]:
    """Hold the SQLite database at ``url`` for this server alone while the block runs; nothing
    to hold on PostgreSQL or MariaDB (several replicas share those)."""
    database = sqlite_path(url)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _take(fd, database, path)
        yield
    finally:
        os.close(fd)  # releases the lock too


def _take(fd: int, database: Path, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(path)
        raise DatabaseServedElsewhere(
            f"another Konfig server{holder} is serving the SQLite database {database}: SQLite "
            "serves one server process (one replica, one worker). Stop that one first, or use "
            "PostgreSQL to run several replicas"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""
