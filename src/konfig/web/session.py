"""The browser's login: the API's own JWT pair kept in HttpOnly cookies, refreshed transparently.

A page request is authenticated exactly like an API call (``konfig.auth.deps.authenticate``);
only where the access token comes from differs. When it has expired, the refresh token is spent
in a transaction of its own, committed at once, so the new pair is valid whatever the page does
next; concurrent requests of one browser share that one refresh instead of tripping the
refresh-token reuse detection.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit.service import record_failure
from konfig.auth import service as auth_service
from konfig.auth.deps import authenticate, name_in_access_log
from konfig.auth.principal import Principal
from konfig.auth.schemas import TokenPair
from konfig.db.session import (
    CHANGED,
    SessionDep,
    announce,
    bind_tenant,
    notify_within,
    open_session,
)
from konfig.errors import Forbidden, KonfigError, Unauthenticated
from konfig.security.jwt import Claims, InvalidToken, TokenSigner
from konfig.state import AppState, state_of
from konfig.web.csrf import SAFE_METHODS, check_csrf, csrf_token

ACCESS_COOKIE = "konfig_access"
REFRESH_COOKIE = "konfig_refresh"
COOKIE_PATH = "/ui"
_PENDING_PAIR = "konfig_ui_new_pair"
_REFRESH_GRACE_SECONDS = 30.0


class NotSignedIn(Exception):
    """No usable login in the cookies: the page sends the browser to the sign-in form."""

    def __init__(self, message: str = "Please sign in to continue.") -> None:
        super().__init__(message)
        self.message = message


class RefreshGate:
    """Spends refresh tokens one at a time; a token spent moments ago yields the same new pair.

    A browser that opens a page, its live-update stream and a fragment at once, just after its
    access token expired, sends the same refresh token three times: without this, the second
    would look like a stolen token being replayed and end the login.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._recent: dict[str, tuple[float, TokenPair]] = {}

    async def refresh(self, state: AppState, refresh_token: str) -> TokenPair:
        digest = hashlib.sha256(refresh_token.encode()).hexdigest()
        async with self._lock:
            now = time.monotonic()
            self._recent = {k: v for k, v in self._recent.items() if v[0] > now}
            if digest in self._recent:
                return self._recent[digest][1]
            pair = await _spend(state, refresh_token)
            self._recent[digest] = (now + _REFRESH_GRACE_SECONDS, pair)
            return pair


async def _spend(state: AppState, refresh_token: str) -> TokenPair:
    """Rotate the pair in a transaction of its own (and record a detected reuse, like the API)."""
    session = await open_session(state.sessionmaker, write=True)
    try:
        pair = await auth_service.refresh(
            session, policy=state.token_policy, refresh_token=refresh_token
        )
        await session.commit()
        return pair
    except KonfigError as exc:
        await session.rollback()
        if exc.record is not None:
            await exc.record(session)
            changed = session.info.pop(CHANGED, None)
            await notify_within(state, session, None, changed)
            await session.commit()
            await announce(state, None, changed)  # the login it ended
        raise
    finally:
        await session.close()


@dataclass(frozen=True, slots=True)
class Access:
    token: str
    claims: Claims


def _verify(signer: TokenSigner, token: str | None) -> Claims | None:
    if not token:
        return None
    try:
        return signer.verify(token, expected_type="access")
    except InvalidToken:
        return None


async def current_access(request: Request) -> Access:
    """A valid access token from the cookies, refreshing the pair when it has expired.

    Resolved before the request's own session is opened: on SQLite a writing request holds the
    write lock from its first statement, and the refresh needs it too.
    """
    state = state_of(request)
    token = request.cookies.get(ACCESS_COOKIE)
    claims = _verify(state.signer, token)
    if token and claims is not None:
        return Access(token, claims)
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if not refresh_token:
        raise NotSignedIn()
    try:
        pair = await state.ui.refresh_gate.refresh(state, refresh_token)
    except Unauthenticated as exc:
        raise NotSignedIn("Your session has ended: please sign in again.") from exc
    setattr(request.state, _PENDING_PAIR, pair)
    claims = _verify(state.signer, pair.access_token)
    if claims is None:  # a pair issued this instant is always valid
        raise NotSignedIn()
    return Access(pair.access_token, claims)


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in person on a page: who they are, their transaction, their form token."""

    request: Request
    session: AsyncSession
    principal: Principal
    csrf_token: str

    async def restart(self) -> None:
        """Roll back a failed write and carry on reading (re-binding the tenant)."""
        await self.session.rollback()
        await bind_tenant(self.session, self.principal.tenant_id)

    async def refused(self, exc: Forbidden) -> None:
        """Roll back a refused write and audit the refusal, as the API does for its 403s, when
        the page shows it next to the form instead of raising it."""
        await self.restart()
        await record_failure(self.session, exc)


def login_binding(session_id: uuid.UUID | None) -> str:
    return f"login:{session_id}"


async def signed_in(
    request: Request,
    access: Annotated[Access, Depends(current_access)],
    session: SessionDep,
) -> Visitor:
    """The signed-in visitor; every unsafe method must carry this login's form token."""
    try:
        principal = await authenticate(state_of(request), session, access.token)
    except Unauthenticated as exc:
        raise NotSignedIn("Your session has ended: please sign in again.") from exc
    await bind_tenant(session, principal.tenant_id)
    name_in_access_log(request.scope, principal.actor, principal.tenant_id)
    binding = login_binding(principal.session_id)
    if request.method not in SAFE_METHODS:
        await check_csrf(request, binding)
    return Visitor(request, session, principal, csrf_token(state_of(request).ui.csrf_key, binding))


SignedIn = Annotated[Visitor, Depends(signed_in)]


def set_login_cookies(response: Response, request: Request, pair: TokenPair) -> None:
    state = state_of(request)
    secure = state.settings.is_production
    refresh_seconds = int(state.token_policy.refresh_lifetime.total_seconds())
    for name, value, max_age in (
        (ACCESS_COOKIE, pair.access_token, pair.expires_in),
        (REFRESH_COOKIE, pair.refresh_token, refresh_seconds),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite="lax",
        )


def clear_login_cookies(response: Response, request: Request) -> None:
    secure = state_of(request).settings.is_production
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax")


def apply_pending_login(response: Response, request: Request) -> None:
    """Hand the browser the pair a transparent refresh produced during this request."""
    pair = getattr(request.state, _PENDING_PAIR, None)
    if isinstance(pair, TokenPair):
        set_login_cookies(response, request, pair)
