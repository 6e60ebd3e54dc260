"""Templates, their filters, and the few ways a page answers (a page, a redirect, a flash)."""

from __future__ import annotations

import base64
import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from konfig import __version__
from konfig.configs.schemas import MASK
from konfig.state import state_of
from konfig.users.models import Role
from konfig.web import STATIC_DIR
from konfig.web.session import Visitor

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
FLASH_COOKIE = "konfig_flash"


def static_version() -> str:
    """Changes whenever a static file does, so browsers never run stale JavaScript."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(value: Any, pretty: bool = False) -> str:
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS if pretty else orjson.OPT_SORT_KEYS
    return orjson.dumps(value, option=option).decode()


@functools.cache
def make_templates() -> Jinja2Templates:
    """One environment per process: it holds nothing of an app, and keeps the compiled pages."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    env.filters["json"] = _json
    env.filters["urlpart"] = lambda text: quote(str(text), safe="")
    env.globals["MASK"] = MASK
    version = static_version()
    env.globals["static"] = lambda name: f"/ui/static/{name}?v={version}"
    return Jinja2Templates(env=env)


def _pop_flash(request: Request) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()[:300]
    except (ValueError, UnicodeDecodeError):
        return None


def page(
    request: Request,
    template: str,
    visitor: Visitor | None = None,
    *,
    status_code: int = 200,
    fragment: bool = False,
    **context: Any,
) -> HTMLResponse:
    """Render a full page (or fragment) with what every template may use.

    A fragment leaves the one-time message alone: the live table of the page being left fetches
    one while the browser follows a redirect, and would take the next page's message with it.
    """
    templates = make_templates()
    flash = None if fragment else _pop_flash(request)
    principal = visitor.principal if visitor else None
    # On a namespace's pages, what the visitor may do there; elsewhere, on the whole tenant.
    name = getattr(context.get("namespace"), "name", None)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "visitor": visitor,
            "principal": principal,
            "csrf_token": visitor.csrf_token if visitor else context.pop("csrf_token", ""),
            "flash": flash,
            "can_edit": principal_at_least(visitor, "editor", name),
            "can_admin": principal_at_least(visitor, "admin", name),
            "tenant_admin": principal_at_least(visitor, "admin"),
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/ui")
    return response


def principal_at_least(visitor: Visitor | None, role: str, namespace: str | None = None) -> bool:
    """Whether the visitor holds ``role`` on the namespace named so (None: on the tenant)."""
    if visitor is None:
        return False
    principal = visitor.principal
    if principal.is_superuser:
        return True
    held = principal.role if namespace is None else principal.role_on(namespace)
    return held is not None and held.at_least(Role(role))


def redirect(request: Request, url: str, *, flash: str | None = None) -> Response:
    """See-other to a page of the UI, optionally with a one-time message for it."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        encoded = base64.urlsafe_b64encode(flash.encode()).decode().rstrip("=")
        response.set_cookie(
            FLASH_COOKIE,
            encoded,
            max_age=60,
            path="/ui",
            httponly=True,
            samesite="lax",
            secure=state_of(request).settings.is_production,
        )
    return response
