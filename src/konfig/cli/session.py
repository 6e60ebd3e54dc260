"""The SDK client behind each client command, and the wrapper that handles its errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from konfig.cli import credentials
from konfig.cli.output import fail
from konfig.client import Konfig, KonfigError, Unauthenticated

P = ParamSpec("P")
R = TypeVar("R")


class _Session:
    """The client of one command, built from the saved credentials on first use."""

    konfig: Konfig | None = None

    def get(self) -> Konfig:
        if self.konfig is None:
            login = credentials.require()
            self.konfig = Konfig(login.url, login.access_token)
        return self.konfig

    def reset(self) -> None:
        if self.konfig is not None:
            self.konfig.close()
        self.konfig = None


session = _Session()


def _refresh() -> bool:
    """Spend the saved refresh token for a new pair; False when there is none to spend."""
    saved = credentials.load()
    if saved.from_environment or not saved.refresh_token or saved.url is None:
        return False
    try:
        with Konfig(saved.url) as konfig:
            tokens = konfig.auth.refresh(saved.refresh_token)
    except KonfigError:
        return False
    saved.access_token, saved.refresh_token = tokens["access_token"], tokens["refresh_token"]
    credentials.save(saved)
    session.reset()
    return True


def api(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command against the server: a stale login is refreshed once, errors exit 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return command(*args, **kwargs)
            except Unauthenticated:
                # A 401 means nothing was changed: after a refresh the command can run again.
                if not _refresh():
                    raise
                return command(*args, **kwargs)
        except credentials.NotLoggedIn as exc:
            raise fail(str(exc)) from None
        except Unauthenticated as exc:
            raise fail(f"{exc.message} (run `konfig login`, or set KONFIG_TOKEN)") from None
        except KonfigError as exc:
            raise fail(exc.message) from None
        finally:
            session.reset()

    return run


def konfig() -> Konfig:
    return session.get()
