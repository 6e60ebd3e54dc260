"""Service accounts and API tokens: create, list (never a secret), revoke, delete.

Anyone signed in holds tokens of their own, as in the API; admins also manage service accounts
and every token of the organisation. A new token's secret is shown once: the create form
redirects (so reloading never submits it again) to a page that reads the secret from a
short-lived cookie, encrypted for this login and this token, and deletes the cookie as it
shows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import uuid
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.errors import Conflict, Forbidden, ValidationFailed
from konfig.state import state_of
from konfig.tokens import service as tokens
from konfig.tokens.schemas import ServiceAccountCreate, ServiceAccountRead, TokenCreate, TokenRead
from konfig.tokens.scopes import PATTERN_RULES
from konfig.users import service as users
from konfig.users.models import Role
from konfig.web.forms import text
from konfig.web.namespace_pages import list_namespaces
from konfig.web.rendering import page, principal_at_least, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor, login_binding

router = APIRouter(prefix="/admin", route_class=UIRoute)

ONCE_COOKIE = "konfig_new_token"
ONCE_PATH = "/ui/admin/tokens"
ONCE_SECONDS = 300
PER_PAGE = 50
EXPIRY_CHOICES = ("30", "90", "365")


# -- the secret, once -----------------------------------------------------------------------


def _once_key(request: Request) -> bytes:
    signer_key: str = state_of(request).signer.key
    return hmac.new(signer_key.encode(), b"konfig-ui-new-token-v1", hashlib.sha256).digest()


def _binding(visitor: Visitor, token_id: uuid.UUID) -> bytes:
    return f"{login_binding(visitor.principal.session_id)}|{token_id}".encode()


def seal_secret(visitor: Visitor, token_id: uuid.UUID, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_once_key(visitor.request)).encrypt(
        nonce, secret.encode(), _binding(visitor, token_id)
    )
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_secret(visitor: Visitor, token_id: uuid.UUID) -> str | None:
    raw = visitor.request.cookies.get(ONCE_COOKIE)
    if not raw:
        return None
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        opened = AESGCM(_once_key(visitor.request)).decrypt(
            blob[:12], blob[12:], _binding(visitor, token_id)
        )
    except (ValueError, InvalidTag):
        return None
    return opened.decode()


def _forget_secret(response: Response, request: Request) -> None:
    response.delete_cookie(
        ONCE_COOKIE,
        path=ONCE_PATH,
        secure=state_of(request).settings.is_production,
        httponly=True,
        samesite="strict",
    )


# -- reading the form -----------------------------------------------------------------------


def parse_scopes(raw: str) -> list[dict[str, Any]]:
    """One scope per line: a namespace pattern, then ``read``, ``secrets``, ``write``."""
    scopes = []
    for number, line in enumerate(raw.splitlines(), start=1):
        words = [w for w in re.split(r"[\s,]+", line.strip()) if w]
        if not words:
            continue
        if len(words) == 1:
            raise ValidationFailed(
                f"line {number}: after the pattern, write its permissions: read, "
                f"secrets (with read), write (e.g. {words[0]} read)"
            )
        scopes.append({"namespaces": words[0], "permissions": words[1:]})
    if not scopes:
        raise ValidationFailed("add at least one line, e.g. payments/* read")
    return scopes


def _scope_error(exc: ValidationError) -> str:
    for error in exc.errors():
        where = error["loc"]
        if where and where[0] == "scopes" and len(where) > 1 and isinstance(where[1], int):
            line = where[1] + 1
            detail = str(error["msg"]).removeprefix("Value error, ")
            if "permissions" in where:
                detail = (
                    "permissions are read, secrets (with read: secret values decrypted) and write"
                )
            return f"line {line}: {detail}"
    return f"write one scope per line: a pattern ({PATTERN_RULES}), then read, secrets and/or write"


def token_payload(fields: dict[str, str], errors: dict[str, str]) -> TokenCreate | None:
    """The API's own schema from the form; each problem is put next to its field."""
    name = fields["name"]
    if not name:
        errors["name"] = "Give the token a name that says who uses it, e.g. billing-worker."
    scopes: list[dict[str, Any]] = []
    try:
        scopes = parse_scopes(fields["scopes"])
    except ValidationFailed as exc:
        errors["scopes"] = exc.message
    days = fields["expires_in_days"]
    if days and not days.isdigit():
        errors["expires_in_days"] = "Enter a number of days, or leave it empty: never expires."
    owner = fields["owner"]
    account: uuid.UUID | None = None
    if owner and owner != "me":
        try:
            account = uuid.UUID(owner)
        except ValueError:
            errors["owner"] = "Choose who owns the token."
    if errors:
        return None
    try:
        return TokenCreate(
            name=name,
            service_account_id=account,
            scopes=scopes,  # validated into ScopeSpec
            expires_in_days=int(days) if days else None,
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "name"
            if where == "scopes":
                errors["scopes"] = _scope_error(exc)
            elif where == "expires_in_days":
                errors[where] = "Between 1 and 3650 days, or empty: never expires."
            else:
                errors.setdefault(where, str(error["msg"]))
    return None


# -- pages ----------------------------------------------------------------------------------


async def _service_accounts(visitor: Visitor) -> list[ServiceAccountRead]:
    if not principal_at_least(visitor, "admin"):
        return []
    found: list[ServiceAccountRead] = []
    cursor: str | None = None
    while len(found) < 1000:
        listed = await tokens.list_service_accounts(
            visitor.session, principal=visitor.principal, cursor=cursor, limit=200
        )
        found.extend(listed.items)
        cursor = listed.next_cursor
        if cursor is None:
            break
    return found


async def tokens_page(
    visitor: Visitor,
    *,
    revoked: bool = False,
    cursor: str | None = None,
    status_code: int = 200,
    create: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    account: dict[str, str] | None = None,
    account_errors: dict[str, str] | None = None,
) -> Response:
    visitor.principal.require_user()
    found, next_cursor = await tokens.list_tokens(
        visitor.session,
        principal=visitor.principal,
        service_account_id=None,
        include_revoked=revoked,
        cursor=cursor,
        limit=PER_PAGE,
    )
    cache = state_of(visitor.request).token_cache
    listed: list[TokenRead] = [
        tokens.render(t, last_used_at=cache.last_used(t.id, t.last_used_at)) for t in found
    ]
    accounts = await _service_accounts(visitor)
    owners = await users.display_names(
        visitor.session,
        principal=visitor.principal,
        actors=[f"user:{t.user_id}" for t in listed if t.user_id is not None],
    )
    return page(
        visitor.request,
        "tokens.html",
        visitor,
        status_code=status_code,
        tokens=listed,
        owners=owners,
        namespace_names=[n.name for n in (await list_namespaces(visitor))[0]],
        accounts=accounts,
        account_names={a.id: a.name for a in accounts},
        next_cursor=next_cursor,
        paged=cursor is not None,
        revoked=revoked,
        create=create or {"owner": "me", "scopes": "", "expires_in_days": "90"},
        errors=errors or {},
        account=account or {},
        account_errors=account_errors or {},
        expiry_choices=EXPIRY_CHOICES,
        pattern_rules=PATTERN_RULES,
    )


@router.get("/tokens")
async def token_list(
    visitor: SignedIn,
    revoked: str = "",
    cursor: str | None = Query(None, max_length=500),
) -> Response:
    """Your tokens (every token of the organisation for admins), and service accounts."""
    return await tokens_page(visitor, revoked=revoked == "1", cursor=cursor)


@router.post("/tokens")
async def create_token(visitor: SignedIn) -> Response:
    """Create a token, then show its secret once."""
    form = await visitor.request.form()
    names = ("name", "owner", "scopes", "expires_in_days")
    fields = {name: text(form, name).strip() for name in names}
    errors: dict[str, str] = {}
    refusal: Forbidden | None = None
    payload = token_payload(fields, errors)
    if payload is not None:
        try:
            token, secret = await tokens.create_token(
                visitor.session, principal=visitor.principal, payload=payload
            )
        except Forbidden as exc:
            errors["owner" if payload.service_account_id else "scopes"] = (
                f"{exc.message[0].upper()}{exc.message[1:]}."
            )
            refusal = exc
        except ValidationFailed as exc:
            errors["form"] = exc.message
        else:
            response = redirect(visitor.request, f"{ONCE_PATH}/{token.id}/created")
            response.set_cookie(
                ONCE_COOKIE,
                seal_secret(visitor, token.id, secret),
                max_age=ONCE_SECONDS,
                path=ONCE_PATH,
                secure=state_of(visitor.request).settings.is_production,
                httponly=True,
                samesite="strict",
            )
            return response
    await (visitor.refused(refusal) if refusal is not None else visitor.restart())
    return await tokens_page(visitor, status_code=422, create=fields, errors=errors)


@router.get("/tokens/{token_id}/created")
async def token_created(visitor: SignedIn, token_id: uuid.UUID) -> Response:
    """The new token's secret, this once; afterwards, what to do if it was not copied."""
    token = await tokens.get_token(visitor.session, principal=visitor.principal, token_id=token_id)
    secret = open_secret(visitor, token_id)
    cache = state_of(visitor.request).token_cache
    response = page(
        visitor.request,
        "token_created.html",
        visitor,
        token=tokens.render(token, last_used_at=cache.last_used(token.id, token.last_used_at)),
        secret=secret,
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    _forget_secret(response, visitor.request)
    return response


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(visitor: SignedIn, token_id: uuid.UUID) -> Response:
    """Revoke a token: every replica refuses it from now on."""
    token = await tokens.get_token(visitor.session, principal=visitor.principal, token_id=token_id)
    await tokens.revoke_token(visitor.session, principal=visitor.principal, token_id=token_id)
    return redirect(
        visitor.request,
        ONCE_PATH,
        flash=f"Revoked {token.name}: services using it are refused from now on.",
    )


@router.post("/service-accounts")
async def create_service_account(visitor: SignedIn) -> Response:
    """Create a service account (admins)."""
    visitor.principal.require(Role.admin)
    form = await visitor.request.form()
    fields = {name: text(form, name).strip() for name in ("name", "description")}
    errors: dict[str, str] = {}
    try:
        payload = ServiceAccountCreate(name=fields["name"], description=fields["description"])
        created = await tokens.create_service_account(
            visitor.session, principal=visitor.principal, payload=payload
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "name"
            errors.setdefault(
                f"account_{where}",
                "Use lowercase letters, digits and . _ - (starting with a letter or digit), "
                "e.g. billing-worker."
                if where == "name"
                else str(error["msg"]),
            )
    except Conflict as exc:
        errors["account_name"] = f"{exc.message[0].upper()}{exc.message[1:]}: pick another name."
    if errors:
        await visitor.restart()
        return await tokens_page(visitor, status_code=422, account=fields, account_errors=errors)
    return redirect(
        visitor.request,
        f"{ONCE_PATH}#create-token",
        flash=f"Created service account {created.name}. Create a token for it below.",
    )


@router.post("/service-accounts/{account_id}/delete")
async def delete_service_account(visitor: SignedIn, account_id: uuid.UUID) -> Response:
    """Delete a service account and its tokens (admins)."""
    account = await tokens.get_service_account(
        visitor.session, principal=visitor.principal, service_account_id=account_id
    )
    await tokens.delete_service_account(
        visitor.session, principal=visitor.principal, service_account_id=account_id
    )
    return redirect(
        visitor.request,
        ONCE_PATH,
        flash=f"Deleted service account {account.name}; its tokens no longer work.",
    )
