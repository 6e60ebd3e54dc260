"""The OpenAPI document, with every error an operation can answer declared in the one shape.

FastAPI documents what a route returns when it succeeds, and a 422 of its own shape. The errors
come from machinery every route shares, so they are declared here, once, from what each
operation declares: its security (401, 403), path parameters (404), body (413, 415, 422),
parameters (422), conditional headers (412), whether it writes (409), and the rate limits and
database behind every API route (429, 503). A route adds what only it can answer with
``responses=error_responses(...)``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

API_PREFIX = "/api/v1/"
_REF = "#/components/schemas/"
_WRITES = {"post", "put", "patch", "delete"}
_CONDITIONAL = {"if-match", "if-none-match"}

DESCRIPTIONS = {
    401: "Not authenticated: no token, or one that is invalid, expired or revoked",
    403: "Authenticated, but not allowed to do this",
    404: "No such object in your tenant",
    409: "Conflicts with the current state (a name taken, the last owner, …)",
    412: "If-Match names a stale version, or If-None-Match: * an existing one",
    413: "The request body is larger than the limit",
    415: "The request body is not in a media type this operation reads",
    422: "The request is malformed or breaks a rule: `details` names the field",
    429: "Too many requests: retry after `Retry-After` seconds",
    503: "Unavailable (the database is unreachable, or the server is shutting down)",
}
_HEADERS = {
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable, for programs: VALIDATION_ERROR, UNAUTHENTICATED, FORBIDDEN, "
        "NOT_FOUND, CONFLICT, PRECONDITION_FAILED, PAYLOAD_TOO_LARGE, RATE_LIMITED, "
        "UNAVAILABLE, INTERNAL, …",
        examples=["NOT_FOUND"],
    )
    message: str = Field(description="For people; never holds a secret")
    details: dict[str, Any] = Field(description="More about it: the field, the rule, …")


class ErrorResponse(BaseModel):
    """Every error Konfig answers, whatever raised it."""

    status: Literal["error"]
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for statuses a route answers beyond those derived from its declaration."""
    return {status: _response(status) for status in statuses}


def _response(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {"application/json": {"schema": {"$ref": f"{_REF}ErrorResponse"}}},
    }
    if status in _HEADERS:
        answer["headers"] = _HEADERS[status]
    return answer


def errors_of(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer, from what it declares."""
    statuses: set[int] = set()
    parameters = operation.get("parameters", [])
    if path.startswith(API_PREFIX):
        statuses |= {429, 503}
    if operation.get("security"):
        statuses |= {401, 403}
    if any(parameter["in"] == "path" for parameter in parameters):
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {413, 415, 422}
    if parameters:
        statuses.add(422)
    if any(
        parameter["in"] == "header" and parameter["name"].lower() in _CONDITIONAL
        for parameter in parameters
    ):
        statuses.add(412)
    if (
        method in _WRITES
        and operation.get("security")
        and (parameters or "requestBody" in operation)
    ):
        statuses.add(409)
    return sorted(statuses)


def declare_errors(spec: dict[str, Any]) -> None:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    shapes = ErrorResponse.model_json_schema(ref_template=_REF + "{model}")
    schemas.update(shapes.pop("$defs", {}))
    schemas["ErrorResponse"] = shapes
    # FastAPI's own 422 body is not what Konfig answers: every reference goes to ErrorResponse.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in errors_of(path, method, operation):
                declared = responses.get(str(status))
                if declared is None or _is_fastapi_422(declared):
                    responses[str(status)] = _response(status)
            for status, declared in responses.items():
                if status.isdigit() and int(status) >= 400 and "content" not in declared:
                    # A route's own words for it, in the one shape.
                    declared["content"] = _response(int(status))["content"]


def _is_fastapi_422(declared: dict[str, Any]) -> bool:
    schema = declared.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == f"{_REF}HTTPValidationError")


def install(app: FastAPI) -> None:
    """``app.openapi`` answers FastAPI's own document with the errors declared (built once,
    then kept, as FastAPI keeps it)."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_errors(build())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = document  # type: ignore[method-assign]
