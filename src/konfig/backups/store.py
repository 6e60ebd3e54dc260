"""Backup files on disk: ``<data dir>/backups/<tenant>/<UTC timestamp>.yaml``, mode 0600.

Blocking file-system calls; the async callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ID_PATTERN = r"^\d{8}T\d{6}\.\d{3}Z$"
_ID = re.compile(ID_PATTERN)
_FILE = re.compile(r"^(\d{8}T\d{6}\.\d{3}Z)\.yaml$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_ID_FORMAT = "%Y%m%dT%H%M%S"


def backup_id(at: datetime) -> str:
    """``20261123T041500.123Z``: sorts by time, safe in a file name and a URL."""
    at = at.astimezone(UTC)
    return f"{at.strftime(_ID_FORMAT)}.{at.microsecond // 1000:03d}Z"


def created_at(identifier: str) -> datetime:
    stamp, millis = identifier.rstrip("Z").split(".")
    base = datetime.strptime(stamp, _ID_FORMAT).replace(tzinfo=UTC)
    return base + timedelta(milliseconds=int(millis))


def valid_id(identifier: str) -> bool:
    return bool(_ID.match(identifier))


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    path: Path
    size: int
    mtime_ns: int


class BackupStore:
    """The backups directory; every call names the tenant, whose directory it stays inside."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def tenant_dir(self, tenant: str) -> Path:
        if not _TENANT.match(tenant):  # names from the API always match; be sure for the path
            raise ValueError(f"tenant name {tenant!r} cannot name a backup directory")
        return self.root / tenant

    def write(self, tenant: str, at: datetime, content: bytes) -> str:
        """Write a backup atomically (temp file, fsync, link into place); answers its id.

        Linking never overwrites: a backup made in the same millisecond (another replica on
        the same volume) takes the next free millisecond.
        """
        directory = self.tenant_dir(tenant)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = directory / f".{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            while True:
                identifier = backup_id(at)
                final = directory / f"{identifier}.yaml"
                try:
                    os.link(tmp, final)
                    break
                except FileExistsError:
                    at += timedelta(milliseconds=1)
                except OSError:  # a file system without hard links
                    if final.exists():
                        at += timedelta(milliseconds=1)
                        continue
                    os.replace(tmp, final)
                    break
        finally:
            tmp.unlink(missing_ok=True)
        self._sync_dir(directory)
        return identifier

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        with contextlib.suppress(OSError):  # not every platform can fsync a directory
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def files(self, tenant: str) -> list[StoredFile]:
        """The tenant's backups, newest first."""
        directory = self.tenant_dir(tenant)
        found: list[StoredFile] = []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            matched = _FILE.match(entry.name)
            if not matched or not entry.is_file(follow_symlinks=False):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # pruned meanwhile
                continue
            found.append(
                StoredFile(matched.group(1), Path(entry.path), stat.st_size, stat.st_mtime_ns)
            )
        found.sort(key=lambda f: f.id, reverse=True)
        return found

    def find(self, tenant: str, identifier: str) -> StoredFile | None:
        if not valid_id(identifier):
            return None
        path = self.tenant_dir(tenant) / f"{identifier}.yaml"
        try:
            stat = path.lstat()
        except FileNotFoundError:
            return None
        if not path.is_file() or path.is_symlink():
            return None
        return StoredFile(identifier, path, stat.st_size, stat.st_mtime_ns)

    def newest(self, tenant: str) -> datetime | None:
        """When the tenant's newest backup was taken (from its name), if it has any."""
        files = self.files(tenant)
        return created_at(files[0].id) if files else None

    def prune(self, tenant: str, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` backups; answers the ids deleted."""
        removed = []
        for stale in self.files(tenant)[keep:]:
            stale.path.unlink(missing_ok=True)
            removed.append(stale.id)
        return removed
