from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from konfig.db import schema
from konfig.errors import error_response
from konfig.input_guard import GuardedRoute
from konfig.metrics import CONTENT_TYPE_LATEST
from konfig.state import state_of

router = APIRouter(tags=["operations"], route_class=GuardedRoute)


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
async def ready(request: Request) -> Response | dict[str, str]:
    """Readiness: the database answers and its schema is current."""
    state = state_of(request)
    if state.shutting_down:
        return error_response(503, "UNAVAILABLE", "shutting down")
    engine = state.engine
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(schema.current_revision)
    except Exception as exc:
        return error_response(503, "UNAVAILABLE", f"database unreachable: {type(exc).__name__}")
    expected = schema.head()
    if current is not None and current != expected and not schema.is_known(current):
        # A newer build has migrated ahead (a rolling upgrade): migrations are additive, so this
        # replica keeps serving until it is replaced.
        return {
            "status": "ready",
            "schema": current,
            "note": f"schema is newer than this build ({expected})",
        }
    if current != expected:
        return error_response(
            503, "UNAVAILABLE", f"database schema is at {current or 'nothing'}, expected {expected}"
        )
    return {"status": "ready", "schema": current or ""}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process."""
    return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
