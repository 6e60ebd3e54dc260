"""Where ``konfig login`` keeps the server URL and tokens: a 0600 file in the user's config dir.

``$XDG_CONFIG_HOME/konfig/credentials.json`` (``~/.config/konfig/credentials.json`` by default);
``KONFIG_URL`` and ``KONFIG_TOKEN`` override what it holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass
class Credentials:
    url: str = DEFAULT_URL
    access_token: str | None = None
    refresh_token: str | None = None
    email: str | None = None
    # True when KONFIG_TOKEN supplied the token: it is not ours to refresh or save.
    from_environment: bool = False


def path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "konfig" / "credentials.json"


def load() -> Credentials:
    """The saved credentials, with ``KONFIG_URL`` / ``KONFIG_TOKEN`` applied over them."""
    saved = Credentials()
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        content = json.loads(path().read_text(encoding="utf-8"))
        saved = Credentials(
            url=str(content.get("url") or DEFAULT_URL),
            access_token=content.get("access_token"),
            refresh_token=content.get("refresh_token"),
            email=content.get("email"),
        )
    if url := os.environ.get("KONFIG_URL"):
        saved.url = url
    if token := os.environ.get("KONFIG_TOKEN"):
        saved = Credentials(saved.url, token, None, None, from_environment=True)
    return saved


def save(credentials: Credentials) -> Path:
    """Write atomically, readable by the user alone (mkstemp creates files 0600)."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    content = asdict(credentials)
    content.pop("from_environment")
    fd, temp = tempfile.mkstemp(prefix=".credentials.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(content, out, indent=2)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return target


def forget() -> bool:
    try:
        path().unlink()
    except FileNotFoundError:
        return False
    return True
