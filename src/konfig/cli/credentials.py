"""Where ``konfig login`` keeps the server URL and tokens: a 0600 file in the user's config dir.

``$XDG_CONFIG_HOME/konfig/credentials.json`` (``~/.config/konfig/credentials.json`` by default);
``KONFIG_URL`` and ``KONFIG_TOKEN`` override what it holds. Without either, there is no server:
a command says so (``require``) rather than trying one at random.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

NOT_LOGGED_IN = "not logged in: run `konfig login` (or set KONFIG_URL and KONFIG_TOKEN)"


class NotLoggedIn(Exception):
    """No server or no token to reach it with; the message says what to do."""


@dataclass
class Credentials:
    url: str | None = None
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
            url=content.get("url") or None,
            access_token=content.get("access_token"),
            refresh_token=content.get("refresh_token"),
            email=content.get("email"),
        )
    if url := os.environ.get("KONFIG_URL"):
        saved.url = url
    if token := os.environ.get("KONFIG_TOKEN"):
        saved = Credentials(saved.url, token, None, None, from_environment=True)
    return saved


@dataclass
class Login:
    """Where a command talks to, and with what."""

    url: str
    access_token: str


def require() -> Login:
    """The server and token a command uses, or ``NotLoggedIn`` saying how to get them."""
    saved = load()
    if saved.from_environment and saved.url is None:
        raise NotLoggedIn("KONFIG_TOKEN is set but not KONFIG_URL: set it to the server's URL")
    if saved.url is None or not saved.access_token:
        raise NotLoggedIn(NOT_LOGGED_IN)
    return Login(saved.url, saved.access_token)


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
