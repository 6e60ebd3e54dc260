"""The one error tree and the handlers that give every error the same shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("konfig.errors")

Record = Callable[["AsyncSession"], Awaitable[None]]


class KonfigError(Exception):
    """Base of every error Konfig answers with; ``record`` is written even though it fails."""

    code: ClassVar[str] = "INTERNAL"
    status_code: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        record: Record | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        self.record = record


class ValidationFailed(KonfigError):
    code, status_code = "VALIDATION_ERROR", 422


class Unauthenticated(KonfigError):
    code, status_code = "UNAUTHENTICATED", 401

    def __init__(self, message: str = "Not authenticated", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(KonfigError):
    code, status_code = "FORBIDDEN", 403


class NotFound(KonfigError):
    code, status_code = "NOT_FOUND", 404


class Conflict(KonfigError):
    code, status_code = "CONFLICT", 409


class PreconditionFailed(KonfigError):
    code, status_code = "PRECONDITION_FAILED", 412


class PayloadTooLarge(KonfigError):
    code, status_code = "PAYLOAD_TOO_LARGE", 413


class RateLimited(KonfigError):
    code, status_code = "RATE_LIMITED", 429


class ServiceUnavailable(KonfigError):
    code, status_code = "UNAVAILABLE", 503


_CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "status": "error",
        "error": {"code": code, "message": message, "details": details or {}},
    }


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = orjson.dumps(error_body(code, message, details))
    return Response(body, status_code, headers=headers, media_type="application/json")


async def _konfig_error(_: Request, exc: Exception) -> Response:
    exc = cast(KonfigError, exc)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The rejected input is left out on purpose: it may be a password or a secret value.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]


def _not_an_id(exc: RequestValidationError) -> str | None:
    """What to say when a path takes an id and was given something else, a name most likely."""
    for err in exc.errors():
        loc = err.get("loc", ())
        if err.get("type") == "uuid_parsing" and len(loc) == 2 and loc[0] == "path":
            parameter = str(loc[1])
            thing = parameter.removesuffix("_id").replace("_", " ")
            listed = {"namespace": " (GET /api/v1/namespaces?prefix=NAME lists them with ids)"}
            return (
                f"{parameter}: {str(err.get('input'))[:100]!r} is not an id: this path takes "
                f"the {thing}'s id (a UUID), not its name{listed.get(thing, '')}"
            )
    return None


_LOCATIONS = ("body", "query", "path", "header", "form")


def field_path(loc: Sequence[Any]) -> str:
    """Where an error's ``loc`` points, without the request part it starts with: ``["body",
    "entries", 0, "key"]`` → ``entries.0.key`` (a field itself named ``body`` stays)."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


async def _validation_error(_: Request, exc: Exception) -> Response:
    exc = cast(RequestValidationError, exc)
    errors = _field_errors(exc)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = field_path(first["loc"])
    message = _not_an_id(exc) or (f"{where}: {first['msg']}" if where else str(first["msg"]))
    return error_response(422, "VALIDATION_ERROR", message, {"errors": errors})


async def _http_error(_: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, say): bad input
        return error_response(
            422, "VALIDATION_ERROR", "The request body could not be read: send UTF-8 JSON"
        )
    code = _CODES_BY_STATUS.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "ERROR")
    if isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        message = HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route"
    return error_response(exc.status_code, code, message, None, dict(exc.headers or {}))


def internal_error(request_id: str) -> Response:
    """The answer to an unexpected error: the one shape, the request id to quote, no detail."""
    return error_response(500, "INTERNAL", f"Internal error (request {request_id})")


async def _unhandled_error(_: Request, exc: Exception) -> Response:
    # Starlette would answer a plain-text 500 here: raised on instead, the error reaches the
    # wrappers around FastAPI (konfig.middleware), which answer every branch's errors alike (a
    # 503 when the database is out of reach, else the 500 of ``internal_error``) and log it.
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the one shape; unhandled ones go on to the middleware."""
    app.add_exception_handler(Exception, _unhandled_error)
    app.add_exception_handler(KonfigError, _konfig_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
