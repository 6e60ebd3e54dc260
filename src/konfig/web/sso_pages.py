"""Signing in through the organisation's OpenID provider (``konfig.sso.logins``): the start,
which sends the browser to the provider, and the callback it comes back to."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from konfig.auth import service as auth_service
from konfig.db.session import SessionDep
from konfig.errors import NotFound, ValidationFailed
from konfig.sso import logins
from konfig.sso.router import callback_url
from konfig.state import state_of
from konfig.web.auth_pages import safe_next
from konfig.web.forms import text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, set_login_cookies

router = APIRouter(route_class=UIRoute)

STATE_COOKIE = "konfig_sso_state"
_COOKIE_PATH = "/ui/sso"
# Refusals before the provider was asked are the provider's or the link's fault.
_STATUS = {
    "unknown": 404,
    "not_configured": 404,
    "provider_unreachable": 502,
    "provider_invalid": 502,
    "issuer_mismatch": 502,
}


async def _refused(
    request: Request, session: SessionDep, refused: logins.SignInRefused, tenant: str = ""
) -> Response:
    """The refusal's audit row, kept, and a page that says what went wrong."""
    await logins.record_refusal(session, refused)
    response = page(
        request,
        "sso_refused.html",
        None,
        status_code=_STATUS.get(refused.reason, 401),
        message=refused.message,
        tenant=tenant,
    )
    response.delete_cookie(STATE_COOKIE, path=_COOKIE_PATH)
    return response


@router.get("/sso/login")
async def sso_login(
    request: Request, session: SessionDep, tenant: str = "", next: str = "/ui"
) -> Response:
    """Send the browser to the organisation's provider (PKCE, state and nonce)."""
    state = state_of(request)
    try:
        ticket = await logins.begin(
            session,
            providers=state.oidc,
            keyring=state.write_policy.keyring,
            tenant_name=tenant.strip(),
            redirect_uri=callback_url(request),
            next_page=safe_next(next),
        )
    except logins.SignInRefused as refused:
        return await _refused(request, session, refused, tenant)
    response = Response(status_code=303, headers={"Location": ticket.url})
    response.set_cookie(
        STATE_COOKIE,
        ticket.state,
        max_age=int(logins.FLOW_LIFETIME.total_seconds()),
        path=_COOKIE_PATH,
        secure=state.settings.is_production,
        httponly=True,
        samesite="lax",  # sent on the provider's redirect back, a top-level navigation
    )
    return response


@router.get("/sso/callback")
async def sso_callback(
    request: Request,
    session: SessionDep,
    state: str = "",
    code: str = "",
    error: str = "",
) -> Response:
    """Where the provider sends the browser back: sign in, or say why not."""
    shared = state_of(request)
    try:
        pair, next_page = await logins.finish(
            session,
            providers=shared.oidc,
            keyring=shared.write_policy.keyring,
            policy=shared.token_policy,
            state=state,
            code=code,
            error=error,
            browser_state=request.cookies.get(STATE_COOKIE),
            redirect_uri=callback_url(request),
        )
    except logins.SignInRefused as refused:
        return await _refused(request, session, refused)
    response = redirect(request, next_page)
    set_login_cookies(response, request, pair)
    response.delete_cookie(STATE_COOKIE, path=_COOKIE_PATH)
    return response


# `konfig login --sso`: the CLI listens on a loopback port and opens the browser at the
# sign-in, which comes back here. On the person's confirmation, a login of its own is opened
# for the CLI and its tokens posted by the browser to the loopback address (RFC 8252's
# loopback redirect, the tokens in a form's body: never in a URL, the history or a log).
_CLI_STATE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _cli_target(port: str, state: str) -> tuple[int, str]:
    if not port.isdigit() or not 1024 <= int(port) <= 65535 or not _CLI_STATE.fullmatch(state):
        raise ValidationFailed("this CLI sign-in link is malformed: run konfig login --sso again")
    return int(port), state


@router.get("/sso/cli")
async def cli_confirm(visitor: SignedIn, port: str = "", state: str = "") -> Response:
    """Ask the signed-in person whether to sign the CLI on this computer in."""
    cli_port, cli_state = _cli_target(port, state)
    return page(visitor.request, "sso_cli.html", visitor, port=cli_port, state=cli_state)


@router.post("/sso/cli")
async def cli_hand_over(visitor: SignedIn) -> Response:
    """Open a login for the CLI and hand its tokens to the loopback address."""
    form = await visitor.request.form()
    cli_port, cli_state = _cli_target(text(form, "port"), text(form, "state"))
    user = await auth_service.user_of(visitor.session, principal=visitor.principal)
    if user is None:
        raise NotFound("your account is gone: sign in again")
    pair = await auth_service.open_login(
        visitor.session, policy=state_of(visitor.request).token_policy, user=user, via="cli"
    )
    response = page(
        visitor.request, "sso_cli.html", visitor, port=cli_port, state=cli_state, pair=pair
    )
    # The one form of Konfig's that leaves its origin: for the loopback address alone.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' http://127.0.0.1:{cli_port}"
    )
    return response
