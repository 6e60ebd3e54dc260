"""The read path as OpenAPI sees it.

``konfig.dispatch`` sends the read path's requests to its handler ahead of these routes. They
exist so ``/docs`` documents the read path, and they answer exactly as it does (they hand the
request to the same handler) when the dispatcher's fast paths are off.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Security
from fastapi.security import HTTPBearer
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from konfig.auth.deps import oauth2_scheme
from konfig.delivery.handler import ReadPath
from konfig.delivery.http import MAX_WAIT
from konfig.input_guard import GuardedRoute
from konfig.paths import API_PREFIX, READ_PATH_PREFIX
from konfig.state import state_of

api_token = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="An API token (kfg_…) or a user's access token",
)
router = APIRouter(
    prefix=READ_PATH_PREFIX.removeprefix(API_PREFIX).rstrip("/"),  # under the API's routes
    tags=["read path"],
    dependencies=[Security(api_token), Security(oauth2_scheme)],
    route_class=GuardedRoute,
)

_CONFIG_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The resolved config in the asked format, with its ETag",
        "content": {
            "application/json": {"example": {"db.pool_size": 10, "feature_x": True}},
            "application/yaml": {},
            "text/plain": {"example": "DB_POOL_SIZE=10\nFEATURE_X=true\n"},
        },
    },
    304: {"description": "Unchanged: If-None-Match names the current ETag (also at a wait's end)"},
    401: {"description": "No valid token"},
    403: {"description": "The token's scopes do not cover this namespace or one it inherits from"},
    404: {"description": "No such namespace in your tenant"},
    409: {"description": "Two keys render to the same env name or property key"},
    422: {"description": "A bad query parameter"},
}


class _Delegate(Response):
    """Hands the request to the read path's ASGI handler."""

    def __init__(self, read_path: ReadPath, name: str, *, events: bool) -> None:
        super().__init__()
        self.read_path = read_path
        self.name = name
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.read_path.serve(scope, receive, send, self.name, events=self.events)


def _read_path(request: Request) -> ReadPath:
    return state_of(request).delivery.read_path


NamePath = Annotated[
    str,
    Path(description="The namespace, e.g. payments/production", examples=["payments/production"]),
]


@router.get(
    "/{name:path}/events",
    response_class=Response,
    responses={
        200: {"description": "Server-sent events", "content": {"text/event-stream": {}}},
        401: {"description": "No valid token"},
        403: {"description": "The token's scopes do not cover this namespace"},
        404: {"description": "No such namespace in your tenant"},
    },
)
async def stream_resolved_config(
    request: Request,
    name: NamePath,
    last_event_id: Annotated[
        str | None,
        Header(description="The id of the last event you saw: no event until it changes again"),
    ] = None,
) -> Response:
    """Server-sent events: one `change` event per change of the resolved config (id = its ETag,
    data = `{namespace, revision, etag, config}`), resumable with `Last-Event-ID`, with a comment
    line as heartbeat; a change to an ancestor or an include counts. Ends when the server stops."""
    return _Delegate(_read_path(request), name, events=True)


@router.get("/{name:path}", response_class=Response, responses=_CONFIG_RESPONSES)
async def read_resolved_config(
    request: Request,
    name: NamePath,
    format: Annotated[
        Literal["json", "yaml", "env", "properties"], Query(description="How to render it")
    ] = "json",
    explain: Annotated[
        bool,
        Query(description="For each key: its value and the namespace and revision it came from"),
    ] = False,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_WAIT,
            description=(
                "Long poll: with If-None-Match, answer as soon as it changes, "
                "304 after this many seconds"
            ),
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header(description="The ETag you hold")] = None,
) -> Response:
    """The namespace merged over what it inherits (includes < ancestors < itself), secrets
    decrypted for tokens holding `secrets` and for editors and above, `********` for anyone
    else. Every namespace it draws on must be readable by the caller (403 naming the first that
    is not). Rendering rules: `konfig.delivery.render`."""
    return _Delegate(_read_path(request), name, events=False)
