"""Form tokens: a synchronizer token tied to the session, checked on every unsafe request.

The token is an HMAC of the session it belongs to: the login's id once signed in, a random
pre-login id (its own HttpOnly cookie) on the sign-in and register forms. A page of another
site can neither read it nor compute it, and it dies with the login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from fastapi import Request, Response

from konfig.state import state_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
ANON_COOKIE = "konfig_anon"


class CsrfRefused(Exception):
    """The form did not carry this session's token."""


def derive_key(secret: str) -> bytes:
    """A key of its own for form tokens, derived from the server's secret."""
    return hmac.new(secret.encode(), b"konfig-ui-csrf-v1", hashlib.sha256).digest()


def csrf_token(key: bytes, binding: str) -> str:
    digest = hmac.new(key, binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def submitted_token(request: Request) -> str:
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(FORM_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, binding: str) -> None:
    expected = csrf_token(state_of(request).ui.csrf_key, binding)
    if not hmac.compare_digest(expected, await submitted_token(request)):
        raise CsrfRefused()


def anon_binding(request: Request) -> tuple[str, bool]:
    """The pre-login session id (from its cookie, or a new one) and whether it is new."""
    value = request.cookies.get(ANON_COOKIE, "")
    if 16 <= len(value) <= 64 and value.isascii():
        return f"anon:{value}", False
    return f"anon:{secrets.token_urlsafe(24)}", True


def keep_anon_cookie(response: Response, request: Request, binding: str) -> None:
    response.set_cookie(
        ANON_COOKIE,
        binding.removeprefix("anon:"),
        max_age=60 * 60 * 24,
        path="/ui",
        secure=state_of(request).settings.is_production,
        httponly=True,
        samesite="lax",
    )
