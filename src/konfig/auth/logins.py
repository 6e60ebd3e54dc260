"""The per-process cache of users' access tokens: a known token is one dict lookup, not a JWT
check and a query.

A token is remembered once it has been verified and its login and user read from the database.
It is dropped when its login ends (logout, a refresh token replayed) or its user changes
(deactivated, deleted, another role), as announced here or by another replica, and it is read
again after ``max_age`` seconds, a backstop should an announcement be lost. The token's own
expiry is checked on every use. Like the API token cache, it holds nothing while this replica
cannot hear announcements (``enabled``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from konfig.auth.principal import Principal

_PRUNE_AT = 10_000  # remembered tokens; beyond this, the expired and stale ones are dropped


@dataclass(frozen=True, slots=True)
class _Login:
    principal: Principal
    expires_at: float  # the token's own expiry, epoch seconds
    fresh_until: float  # time.monotonic()


class LoginCache:
    def __init__(self, *, max_age: float) -> None:
        self.max_age = max_age
        self.enabled = True
        self.generation = 0  # raised by every forgetting: a read begun before it is not kept
        self._logins: dict[str, _Login] = {}

    def lookup(self, token: str) -> Principal | None:
        login = self._logins.get(token)
        if login is None:
            return None
        if login.expires_at <= time.time() or login.fresh_until < time.monotonic():
            self._logins.pop(token, None)
            return None
        return login.principal

    def remember(
        self, token: str, principal: Principal, *, expires_at: float, generation: int
    ) -> None:
        """Keep what a read begun at ``generation`` found, unless something was forgotten since."""
        if not self.enabled or generation != self.generation:
            return
        if len(self._logins) >= _PRUNE_AT:
            self._prune()
        fresh_until = time.monotonic() + self.max_age
        self._logins[token] = _Login(principal, expires_at, fresh_until)

    def _prune(self) -> None:
        now, clock = time.time(), time.monotonic()
        self._logins = {
            token: login
            for token, login in self._logins.items()
            if login.expires_at > now and login.fresh_until >= clock
        }
        if len(self._logins) >= _PRUNE_AT:
            self._logins.clear()

    def _forget(self, **attributes: uuid.UUID) -> None:
        self.generation += 1
        self._logins = {
            token: login
            for token, login in self._logins.items()
            if not any(getattr(login.principal, a) == v for a, v in attributes.items())
        }

    def forget_login(self, session_id: uuid.UUID) -> None:
        self._forget(session_id=session_id)

    def forget_user(self, user_id: uuid.UUID) -> None:
        self._forget(id=user_id)

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._forget(tenant_id=tenant_id)

    def clear(self) -> None:
        self.generation += 1
        self._logins.clear()
