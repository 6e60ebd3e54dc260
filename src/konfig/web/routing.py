"""How UI routes answer failures: as pages that say what happened and what to do next."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from konfig.audit.context import current
from konfig.audit.refusals import keep_trace
from konfig.db.outage import unavailable
from konfig.db.session import REFUSED, SESSION_OPEN
from konfig.errors import Forbidden, KonfigError
from konfig.input_guard import refuse_bad_form, refuse_bad_parameters
from konfig.middleware import request_id_var
from konfig.state import state_of
from konfig.web.csrf import CsrfRefused
from konfig.web.rendering import page, redirect
from konfig.web.session import NotSignedIn, apply_pending_login, clear_login_cookies

log = logging.getLogger("konfig.web")

_TITLES = {
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    412: "Changed meanwhile",
    413: "Too large",
    422: "Not valid",
    429: "Slow down",
    503: "Unavailable",
}
_NEXT_STEPS = {
    403: "Ask an admin of your organisation for a role that allows this.",
    404: "It may have been deleted, or it belongs to another organisation. "
    "Go back to your namespaces and pick it from the list.",
    412: "Someone changed it while you were looking at it: open it again to see the current "
    "version, then reapply your change.",
    500: "Try again in a moment; if it keeps happening, give the request id to whoever runs "
    "Konfig.",
    503: "Konfig cannot reach its database right now. Try again in a few seconds.",
}


def _wants_page(request: Request) -> bool:
    return "X-Konfig-Fragment" not in request.headers and "text/event-stream" not in (
        request.headers.get("accept", "")
    )


def error_page(request: Request, status_code: int, message: str) -> Response:
    return page(
        request,
        "error.html",
        None,
        status_code=status_code,
        title=_TITLES.get(status_code, "Something went wrong"),
        message=message,
        next_step=_NEXT_STEPS.get(status_code, ""),
        retry=_same_page(request) if status_code >= 500 and request.method == "GET" else "",
    )


def _same_page(request: Request) -> str:
    url = request.url
    return url.path + (f"?{url.query}" if url.query else "")


async def _refuse_hostile_text(request: Request) -> None:
    """A NUL or lone surrogate in a page's parameters or a form's fields is a 422 page."""
    refuse_bad_parameters(request.query_params.multi_items(), request.path_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith(_FORM_TYPES):
        refuse_bad_form((await request.form()).multi_items())


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class UIRoute(APIRoute):
    """Turns the UI's failures into pages, and hands out a refreshed login on every answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def ui_handler(request: Request) -> Response:
            try:
                await _refuse_hostile_text(request)
                response = await handler(request)
            except NotSignedIn as exc:
                request.scope[REFUSED] = True
                return _sign_in_again(request, exc)
            except Exception as exc:
                # Whatever page shows the failure, the request's own work is rolled back: the
                # session dependency never sees a failure caught here.
                request.scope[REFUSED] = True
                response = await _failure_page(request, exc)
            apply_pending_login(response, request)
            return response

        return ui_handler


def _sign_in_again(request: Request, exc: NotSignedIn) -> Response:
    if _wants_page(request):
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            where = f"/ui/login?next={quote(target, safe='/')}"
        else:  # a form posted: the page's script knows which page it was, and keeps the input
            where = "/ui/login?next=/ui&resume=yes"
        response = redirect(request, where, flash=exc.message)
    else:
        response = Response(exc.message, status_code=401, media_type="text/plain")
    clear_login_cookies(response, request)
    return response


async def _failure_page(request: Request, exc: Exception) -> Response:
    """The page that shows ``exc``; an unexpected error is raised again (a 500)."""
    if isinstance(exc, CsrfRefused):
        if current().actor != "anonymous":  # a signed-in visitor: audited, as a 403
            await _leave_trace(request, Forbidden("the form token was refused"))
        return error_page(
            request,
            403,
            "This form could not be accepted: it has expired or did not come from a "
            "Konfig page. Go back, reload the page and submit it again.",
        )
    if isinstance(exc, RequestValidationError):
        return error_page(request, 404, "There is no such page.")
    if isinstance(exc, KonfigError):
        await _leave_trace(request, exc)
        return error_page(request, exc.status_code, exc.message)
    refusal = unavailable(exc, state_of(request).outages)
    if refusal is None:
        # A page, not the API's JSON: logged as the API's 500s are, with the request id.
        request_id = request_id_var.get()
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.url.path, request_id
        )
        response = error_page(
            request,
            500,
            f"Something went wrong on our side (request {request_id}), and nothing was changed.",
        )
        if request.method == "GET":
            response.headers["Retry-After"] = "1"
        return response
    response = error_page(request, refusal.status_code, refusal.message)
    response.headers.update(refusal.headers)
    return response


async def _leave_trace(request: Request, exc: KonfigError) -> None:
    """A denial's audit row (or an error's own record), in a transaction of its own, as the
    API's refusals leave theirs: written by the request's session after it has rolled back
    when it is still open (on SQLite it holds the writer's turn: a second writer would wait
    for it), else at once."""
    if request.scope.get(SESSION_OPEN):
        request.scope[REFUSED] = exc
    else:
        await keep_trace(state_of(request), exc)
