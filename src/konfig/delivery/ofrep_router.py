"""OFREP as OpenAPI sees it.

``konfig.dispatch`` sends OFREP's requests to ``konfig.delivery.ofrep`` ahead of these routes;
they exist so ``/docs`` documents the protocol's endpoints, and they answer exactly as the fast
path does (they hand the request to the same handler) when the dispatcher's fast paths are off.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from konfig.delivery.ofrep import Ofrep
from konfig.paths import OFREP_PREFIX
from konfig.state import state_of

router = APIRouter(
    prefix=OFREP_PREFIX.rstrip("/"),
    tags=["feature flags (OFREP)"],
    dependencies=[
        Security(HTTPBearer(auto_error=False, scheme_name="APIToken")),
        Security(APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="APIKey")),
    ],
)

_CONTEXT: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "context": {
                        "type": "object",
                        "properties": {"targetingKey": {"type": "string"}},
                        "additionalProperties": True,
                    }
                },
            },
            "example": {"context": {"targetingKey": "user-123", "email": "ann@example.com"}},
        }
    },
}


class OfrepFailure(BaseModel):
    """An evaluation that failed, in OFREP's shape (``evaluationFailure``, ``flagNotFound``)."""

    key: str | None = Field(None, description="The flag (absent when the whole request failed)")
    errorCode: str = Field(
        description="FLAG_NOT_FOUND, TARGETING_KEY_MISSING, INVALID_CONTEXT, PARSE_ERROR, GENERAL"
    )
    errorDetails: str = Field(description="For people")


_REF = "#/components/schemas/"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "INVALID_CONTEXT, TARGETING_KEY_MISSING, PARSE_ERROR or GENERAL",
        "model": OfrepFailure,
    },
    401: {"description": "No valid token"},
    403: {"description": "The token may not read this namespace"},
    413: {"description": "The request is larger than 64 KiB"},
    404: {"description": "No such namespace in your tenant"},
    422: {"description": "No namespace named (send X-Konfig-Namespace), or a NUL in the body"},
    429: {"description": "Rate limited (Retry-After)"},
}
Namespace = Annotated[
    str | None,
    Header(
        alias="X-Konfig-Namespace",
        description="The namespace whose flags to evaluate (default: the token's one scope)",
    ),
]


class _Delegate(Response):
    """Hands the request to the OFREP handler."""

    def __init__(self, ofrep: Ofrep) -> None:
        super().__init__()
        self.ofrep = ofrep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ofrep(scope, receive, send)


def _ofrep(request: Request) -> Ofrep:
    return state_of(request).delivery.ofrep


@router.post(
    "/evaluate/flags/{key}",
    response_class=Response,
    openapi_extra={"requestBody": _CONTEXT},
    responses={
        200: {
            "description": "The flag's value for the context",
            "content": {
                "application/json": {
                    "example": {
                        "key": "new_checkout",
                        "value": True,
                        "reason": "TARGETING_MATCH",
                        "variant": "on",
                    }
                }
            },
        },
        **_ERRORS,
        404: {
            "description": "FLAG_NOT_FOUND (OFREP's shape), or no such namespace",
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [{"$ref": _REF + "OfrepFailure"}, {"$ref": _REF + "ErrorResponse"}]
                    }
                }
            },
        },
    },
)
async def evaluate_flag(
    request: Request,
    key: Annotated[str, Path(description="The flag's key")],
    namespace: Namespace = None,
) -> Response:
    """Evaluate one flag for a context (OFREP): value, variant, reason (STATIC,
    TARGETING_MATCH, SPLIT, DEFAULT, DISABLED) and the flag's metadata."""
    return _Delegate(_ofrep(request))


@router.post(
    "/evaluate/flags",
    response_class=Response,
    openapi_extra={"requestBody": _CONTEXT},
    responses={
        200: {"description": "Every flag's evaluation, eventStreams, and an ETag"},
        304: {"description": "If-None-Match names the current ETag: nothing changed"},
        **_ERRORS,
    },
)
async def evaluate_flags(
    request: Request,
    namespace: Namespace = None,
    if_none_match: Annotated[str | None, Header(description="The ETag you hold")] = None,
    flag_config_etag: Annotated[
        str | None,
        Query(
            alias="flagConfigEtag",
            description="The etag of the refetchEvaluation event that led to this request",
        ),
    ] = None,
) -> Response:
    """Evaluate every flag of the namespace for a context (OFREP bulk evaluation)."""
    return _Delegate(_ofrep(request))


@router.get(
    "/events",
    response_class=Response,
    responses={
        200: {"description": "Server-sent events", "content": {"text/event-stream": {}}},
        **{k: v for k, v in _ERRORS.items() if k in (401, 403, 404, 422)},
    },
)
async def flag_events(
    request: Request,
    namespace: Annotated[
        str | None, Query(description="The namespace (or send X-Konfig-Namespace)")
    ] = None,
) -> Response:
    """Server-sent events: a `refetchEvaluation` message (OFREP) each time the namespace's flags
    change."""
    return _Delegate(_ofrep(request))
