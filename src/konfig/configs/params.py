"""What the entry routes take and give, shared by the configs and revisions routers.

The path, query and header annotations of an entry, the revision message header, and the
entry's answer with its ``ETag``: defined here once so that no router imports another.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Response

from konfig.changes.schemas import ChangeRequestSummary
from konfig.configs import service
from konfig.configs.schemas import KEY_PATTERN, ConfigRead
from konfig.input_guard import MESSAGE_LIMIT, decode_message
from konfig.revisions.writer import WritePolicy

_PROTECTED = (
    "The namespace is protected: the change went into your draft change request, which "
    "answers here (its Location is under /api/v1/change-requests)"
)
# ``responses=`` of a write that a protected namespace turns into a change request.
PROPOSED: dict[int | str, dict[str, Any]] = {
    202: {"model": ChangeRequestSummary, "description": _PROTECTED}
}
PROPOSED_RESULT: dict[int | str, dict[str, Any]] = {
    202: {"description": _PROTECTED + ": change_request names it"}
}

KeyPath = Annotated[str, Path(pattern=KEY_PATTERN, description="The entry's key")]
Reveal = Annotated[bool, Query(description="Show secret values (editors and above)")]
IfMatch = Annotated[str | None, Header(description="ETag of the version you are changing")]
IfNoneMatch = Annotated[str | None, Header(description="'*' refuses to overwrite an existing key")]


def revision_message(
    sent: Annotated[
        str | None,
        Header(
            alias="X-Konfig-Message",
            description="Recorded with the revision (UTF-8)",
            json_schema_extra={"maxLength": MESSAGE_LIMIT},
        ),
    ] = None,
) -> str | None:
    """``X-Konfig-Message`` decoded as UTF-8 (the server hands it over read as Latin-1)."""
    return None if sent is None else decode_message(sent.encode("latin-1"))


Message = Annotated[str | None, Depends(revision_message)]


def answer(response: Response, policy: WritePolicy, entry: object, *, reveal: bool) -> ConfigRead:
    """The entry as the API shows it, with its ETag."""
    rendered = service.render(policy, entry, reveal=reveal)  # type: ignore[arg-type]
    response.headers["ETag"] = service.etag(rendered.version)
    return rendered
