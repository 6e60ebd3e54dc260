"""Sign in, register an organisation, sign out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.auth import service as auth_service
from konfig.auth.schemas import LoginRequest, RegisterRequest
from konfig.db.session import SessionDep
from konfig.errors import Conflict, Unauthenticated
from konfig.ratelimit import limit_credentials
from konfig.sso import logins
from konfig.state import state_of
from konfig.web.csrf import anon_binding, check_csrf, csrf_token, keep_anon_cookie
from konfig.web.forms import text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, clear_login_cookies, set_login_cookies

router = APIRouter(route_class=UIRoute)

_FIELD_HELP = {
    "name": "Use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit "
    "(e.g. acme).",
    "email": "Enter an email address, like you@example.com.",
    "password": "Use at least 8 characters.",
    "full_name": "Keep it under 200 characters.",
}


_ENTER_PASSWORD = "Enter your password."  # noqa: S105 - a message, not a password


def safe_next(target: str) -> str:
    """Only ever send the browser on to a page of the UI after signing in."""
    if target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


def _anon_form(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> Response:
    binding, new = anon_binding(request)
    response = page(
        request,
        template,
        None,
        status_code=status_code,
        csrf_token=csrf_token(state_of(request).ui.csrf_key, binding),
        **context,
    )
    if new:
        keep_anon_cookie(response, request, binding)
    return response


async def _check_anon_csrf(request: Request) -> None:
    binding, _ = anon_binding(request)
    await check_csrf(request, binding)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        errors.setdefault(name, _FIELD_HELP.get(name, str(error["msg"])))
    return errors


@router.get("/login")
async def login_form(
    request: Request,
    session: SessionDep,
    next: str = "/ui",
    tenant: str = "",
    resume: str = "",
) -> Response:
    """The sign-in form; with ``tenant``, a button for its single sign-on provider; with
    ``resume``, a form posted after the session ended (the page's script returns to it)."""
    provider = await logins.provider_name(session, tenant_name=tenant) if tenant else None
    return _anon_form(
        request,
        "login.html",
        next=safe_next(next),
        resume=resume == "yes",
        email="",
        errors={},
        tenant=tenant if provider else "",
        provider=provider,
        sso_missing=f"{tenant} has no single sign-on set up." if tenant and not provider else "",
    )


@router.post("/login")
async def login(request: Request, session: SessionDep) -> Response:
    """Check the password, keep the login in cookies and go on to the page asked for."""
    await _check_anon_csrf(request)
    form = await request.form()
    email, target = text(form, "email").strip(), safe_next(text(form, "next"))
    await limit_credentials(request, action="login", email=email)
    try:
        payload = LoginRequest(email=email, password=text(form, "password"))
        pair = await auth_service.login(
            session, policy=state_of(request).token_policy, payload=payload
        )
    except ValidationError as exc:
        errors = _field_errors(exc)
        if "password" in errors:
            errors["password"] = _ENTER_PASSWORD
        return _anon_form(
            request, "login.html", status_code=422, next=target, email=email, errors=errors
        )
    except Unauthenticated as exc:
        if exc.record is not None:  # the failed login's audit row: nothing else was written
            await exc.record(session)
        errors = {"form": "Incorrect email or password. Check both and try again."}
        if isinstance(exc, auth_service.PasswordLoginOff):
            errors = {"form": exc.message + "."}
        return _anon_form(
            request, "login.html", status_code=401, next=target, email=email, errors=errors
        )
    response = redirect(request, target)
    set_login_cookies(response, request, pair)
    return response


@router.get("/register")
async def register_form(request: Request) -> Response:
    """The form that creates an organisation and its owner."""
    return _anon_form(request, "register.html", fields={}, errors={})


@router.post("/register")
async def register(request: Request, session: SessionDep) -> Response:
    """Create the organisation, sign its owner in and open the (empty) dashboard."""
    await _check_anon_csrf(request)
    form = await request.form()
    fields = {name: text(form, name).strip() for name in ("name", "email", "full_name")}
    await limit_credentials(request, action="register", email=fields["email"])
    try:
        payload = RegisterRequest(**fields, password=text(form, "password"))
        await auth_service.register(session, payload=payload)
        pair = await auth_service.login(
            session,
            policy=state_of(request).token_policy,
            payload=LoginRequest(email=payload.email, password=payload.password),
        )
    except ValidationError as exc:
        return _anon_form(
            request, "register.html", status_code=422, fields=fields, errors=_field_errors(exc)
        )
    except Conflict as exc:
        await session.rollback()
        where = "name" if "tenant" in exc.message else "email"
        errors = {where: f"{exc.message[0].upper()}{exc.message[1:]}: choose another."}
        return _anon_form(request, "register.html", status_code=409, fields=fields, errors=errors)
    response = redirect(
        request,
        "/ui",
        flash=f"Welcome to Konfig! Your organisation {payload.name} is ready: "
        "create its first namespace below.",
    )
    set_login_cookies(response, request, pair)
    return response


@router.post("/logout")
async def logout(visitor: SignedIn) -> Response:
    """End this login everywhere it is used and forget the cookies."""
    await auth_service.logout(visitor.session, principal=visitor.principal)
    response = redirect(visitor.request, "/ui/login", flash="You are signed out.")
    clear_login_cookies(response, visitor.request)
    return response
