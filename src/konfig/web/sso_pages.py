"""Signing in through the organisation's OpenID provider (``konfig.sso.logins``): the start,
which sends the browser to the provider, and the callback it comes back to."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.auth import service as auth_service
from konfig.db.session import SessionDep
from konfig.errors import NotFound, ValidationFailed
from konfig.sso import logins
from konfig.sso import service as sso_service
from konfig.sso.router import callback_url, sso_read
from konfig.sso.schemas import SsoRead, SsoSettings
from konfig.state import state_of
from konfig.users.models import Role
from konfig.web.admin_pages import grant_lines
from konfig.web.auth_pages import safe_next
from konfig.web.forms import text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor, set_login_cookies

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


# The owner's settings page ----------------------------------------------------------------

_FIELDS = ("issuer", "client_id", "display_name", "allowed_domains", "group_claim")


def _mapping_lines(raw: str) -> list[dict[str, object]]:
    """``groups payments-devs editor payments/**`` per line → mapping rules (one grant each;
    lines of the same claim and value are merged)."""
    rules: dict[tuple[str, str], list[dict[str, str]]] = {}
    for line in raw.splitlines():
        words = line.split()
        if not words:
            continue
        claim, value, role, pattern = [*words, "", "", "", ""][:4]
        rules.setdefault((claim, value), []).append({"role": role, "namespaces": pattern})
    return [{"claim": c, "value": v, "grants": g} for (c, v), g in rules.items()]


def _settings_form(config: SsoRead | None) -> dict[str, str]:
    if config is None:
        return {"strict": "", "password_login": "on"}
    return {
        "issuer": config.issuer,
        "client_id": config.client_id,
        "display_name": config.display_name,
        "allowed_domains": " ".join(config.allowed_domains),
        "group_claim": config.group_claim or "",
        "default_grants": "\n".join(f"{g.role} {g.namespaces}" for g in config.default_grants),
        "role_mapping": "\n".join(
            f"{r.claim} {r.value} {g.role} {g.namespaces}"
            for r in config.role_mapping
            for g in r.grants
        ),
        "strict": "on" if config.strict else "",
        "password_login": "on" if config.password_login else "",
    }


async def _settings_page(
    visitor: Visitor,
    *,
    status_code: int = 200,
    fields: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    try:
        found = await sso_service.get(visitor.session, principal=visitor.principal)
        config: SsoRead | None = await sso_read(visitor.session, visitor.request, found)
    except NotFound:
        config = None
    return page(
        visitor.request,
        "sso_settings.html",
        visitor,
        status_code=status_code,
        config=config,
        fields=fields or _settings_form(config),
        errors=errors or {},
        redirect_uri=callback_url(visitor.request),
    )


@router.get("/admin/sso")
async def sso_settings(visitor: SignedIn) -> Response:
    """The organisation's single sign-on settings (owners)."""
    visitor.principal.require(Role.owner)
    return await _settings_page(visitor)


@router.post("/admin/sso")
async def save_sso_settings(visitor: SignedIn) -> Response:
    """Save the single sign-on settings; a blank client secret keeps the stored one."""
    form = await visitor.request.form()
    fields = {name: text(form, name).strip() for name in _FIELDS}
    fields |= {name: text(form, name) for name in ("default_grants", "role_mapping")}
    fields |= {name: "on" if text(form, name) else "" for name in ("strict", "password_login")}
    secret = text(form, "client_secret")
    try:
        payload = SsoSettings.model_validate(
            {
                "issuer": fields["issuer"],
                "client_id": fields["client_id"],
                "client_secret": secret or None,
                "display_name": fields["display_name"],
                "allowed_domains": fields["allowed_domains"].replace(",", " ").split(),
                "group_claim": fields["group_claim"] or None,
                "default_grants": grant_lines(fields["default_grants"]),
                "role_mapping": _mapping_lines(fields["role_mapping"]),
                "strict": fields["strict"] == "on",
                "password_login": fields["password_login"] == "on",  # noqa: S105 - a checkbox
            }
        )
        await sso_service.put(
            visitor.session,
            principal=visitor.principal,
            keyring=state_of(visitor.request).write_policy.keyring,
            payload=payload,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = str(first["loc"][0]) if first["loc"] else "form"
        message = f"{first['msg'].removeprefix('Value error, ')}."
        return await _settings_page(
            visitor, status_code=422, fields=fields, errors={where: message}
        )
    except ValidationFailed as exc:
        await visitor.restart()
        errors = {"client_secret": f"{exc.message[0].upper()}{exc.message[1:]}."}
        return await _settings_page(visitor, status_code=422, fields=fields, errors=errors)
    return redirect(visitor.request, "/ui/admin/sso", flash="Saved the single sign-on settings.")
