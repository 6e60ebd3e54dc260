"""The last-known-good file: the configs a service last read, for starting during an outage."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("konfig_client")


class StaleConfigWarning(UserWarning):
    """Konfig could not be reached: a config came from the last-known-good file."""


@dataclass(frozen=True)
class CachedConfig:
    value: Any
    etag: str | None
    saved_at: float


class LastKnownGood:
    """A JSON file of ``{name: {format: {value, etag, saved_at}}}``, mode 0600.

    Every write goes to a temporary file in the same directory, then ``os.replace`` puts it in
    place: a reader (or a crash) never sees half a file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            content = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable last-known-good file %s: %s", self.path, exc)
            return {}
        configs = content.get("configs") if isinstance(content, dict) else None
        return configs if isinstance(configs, dict) else {}

    def get(self, name: str, format: str) -> CachedConfig | None:
        entry = self._read().get(name, {}).get(format)
        if not isinstance(entry, dict) or "value" not in entry:
            return None
        return CachedConfig(entry["value"], entry.get("etag"), float(entry.get("saved_at", 0)))

    def put(self, name: str, format: str, value: Any, etag: str | None) -> None:
        with self._lock:
            configs = self._read()
            configs.setdefault(name, {})[format] = {
                "value": value,
                "etag": etag,
                "saved_at": time.time(),
            }
            self._write({"version": 1, "configs": configs})

    def _write(self, content: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600, so the secrets in it are never readable by others.
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(content, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def fallback(self, name: str, format: str, reason: Exception) -> CachedConfig | None:
        """The cached config, announced with a warning, or None when there is none."""
        cached = self.get(name, format)
        if cached is None:
            return None
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cached.saved_at))
        message = (
            f"Konfig is unreachable ({reason}); using the last-known-good {name!r} "
            f"saved {saved} from {self.path}"
        )
        log.warning("%s", message)
        warnings.warn(message, StaleConfigWarning, stacklevel=4)
        return cached
