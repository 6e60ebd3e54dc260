"""One exception tree, mapped back from the server's error shape.

Every error the server answers reads ``{"status": "error", "error": {"code", "message",
"details"}}``; :func:`error_from_response` turns it into the matching class below.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "Conflict",
    "ConnectionError",
    "Forbidden",
    "KonfigError",
    "MissingKey",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "ServerError",
    "Unauthenticated",
    "ValidationError",
    "WrongType",
    "error_for",
    "error_from_response",
]


class KonfigError(Exception):
    """Base of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "ERROR",
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.details = details or {}
        self.response = response


class ValidationError(KonfigError):
    """422: the request or a value failed validation; ``details`` names the rule."""


class Unauthenticated(KonfigError):
    """401: no token, or an expired, revoked or wrong one."""


class Forbidden(KonfigError):
    """403: the token's role or scopes do not allow this."""


class NotFound(KonfigError):
    """404: no such object in your tenant."""


class Conflict(KonfigError):
    """409: the object exists already, or the change clashes with the current state."""


class PreconditionFailed(KonfigError):
    """412: ``If-Match`` named a version that is no longer current."""


class PayloadTooLarge(KonfigError):
    """413: the body is over the server's size limit."""


class RateLimited(KonfigError):
    """429: slow down; ``retry_after`` is the server's hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(KonfigError):
    """5xx: the server failed or is unavailable."""


class ConnectionError(KonfigError):  # shadows the builtin on purpose: konfig_client.ConnectionError
    """The server could not be reached (refused, timed out, DNS, TLS)."""


class MissingKey(KonfigError):
    """A typed getter asked for a key the config does not hold (``MISSING_KEY``)."""


class WrongType(KonfigError):
    """A typed getter found a value of another type (``WRONG_TYPE``): a boolean is no number."""


_BY_CODE: dict[str, type[KonfigError]] = {
    "VALIDATION_ERROR": ValidationError,
    "UNAUTHENTICATED": Unauthenticated,
    "FORBIDDEN": Forbidden,
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "PRECONDITION_FAILED": PreconditionFailed,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
    "RATE_LIMITED": RateLimited,
}
_BY_STATUS: dict[int, type[KonfigError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
}


_STATUS_OF = {
    code: status
    for status, code in (
        (401, "UNAUTHENTICATED"),
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
        (409, "CONFLICT"),
        (412, "PRECONDITION_FAILED"),
        (413, "PAYLOAD_TOO_LARGE"),
        (422, "VALIDATION_ERROR"),
        (429, "RATE_LIMITED"),
    )
}


def error_for(code: str, message: str) -> KonfigError:
    """The exception for an error the server sent without an HTTP status of its own (an
    ``error`` event on a stream): by its code, a ``ServerError`` for any code it does not know."""
    cls = _BY_CODE.get(code, ServerError)
    return cls(message, code=code or "INTERNAL", status_code=_STATUS_OF.get(code))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to leave the pause to the caller


def error_from_response(response: httpx.Response) -> KonfigError:
    """The exception for an error answer, whatever its body."""
    code, message = "", ""
    details: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict) and "errorCode" in body:  # OFREP's error bodies
            code, message = str(body["errorCode"]), str(body.get("errorDetails") or "")
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            message = str(error.get("message") or "")
            if isinstance(error.get("details"), dict):
                details = error["details"]
    except (ValueError, KeyError):
        pass
    status = response.status_code
    message = message or f"HTTP {status} {response.reason_phrase}".strip()
    if status >= 500:
        cls: type[KonfigError] = ServerError
    else:
        cls = _BY_CODE.get(code) or _BY_STATUS.get(status, KonfigError)
    kwargs: dict[str, Any] = {
        "code": code or cls.__name__.upper(),
        "status_code": status,
        "details": details,
        "response": response,
    }
    if cls is RateLimited:
        return RateLimited(message, retry_after=_retry_after(response), **kwargs)
    return cls(message, **kwargs)
