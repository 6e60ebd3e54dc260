"""What each single-entry write answers: one function per operation (create, replace, patch,
delete) that does the write and makes its answer (status, the entry as the API shows it, its
ETag). A write to a protected namespace answers 202 Accepted with the change request it went
into (``konfig.changes``) instead of the entry.

The write path (``konfig.configs.write_path``) and FastAPI's routes (``konfig.configs.router``)
both call these, so a write answers alike whichever of them took it; ``tests/test_write_parity.py``
checks that they do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from konfig.auth.principal import Principal
from konfig.changes.schemas import ChangeRequestSummary
from konfig.configs import service
from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import ConfigCreate, ConfigPatch, ConfigRead, ConfigReplace
from konfig.configs.writes import EntryWriter
from konfig.paths import API_PREFIX
from konfig.revisions.writer import Proposed, WritePolicy


@dataclass(frozen=True, slots=True)
class Written:
    """A write's answer: its status, and the entry as written (secrets masked; None for a
    delete)."""

    status: int
    entry: ConfigRead | None = None
    proposal: ChangeRequestSummary | None = None  # 202: the change request it went into

    def response(self) -> Response:
        """The answer as sent: the entry as JSON with its version as the ETag, the change
        request it went into, or no body."""
        if self.proposal is not None:
            body = self.proposal.__pydantic_serializer__.to_json(self.proposal)
            location = f"{API_PREFIX}/change-requests/{self.proposal.id}"
            headers = {"Location": location}
            return Response(body, 202, headers=headers, media_type="application/json")
        if self.entry is None:
            return Response(status_code=self.status)
        body = self.entry.__pydantic_serializer__.to_json(self.entry)
        headers = {"ETag": service.etag(self.entry.version)}
        return Response(body, self.status, headers=headers, media_type="application/json")


def _shown(policy: WritePolicy, entry: ConfigEntry, status: int) -> Written:
    return Written(status, service.render(policy, entry, reveal=False))


def proposed(proposal: ChangeRequestSummary) -> Written:
    """The answer of a write that went into a change request."""
    return Written(202, proposal=proposal)


async def create(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    payload: ConfigCreate,
    message: str | None,
    if_none_match: str | None,
) -> Written:
    """``POST …/configs``: 201 with the new entry."""
    try:
        entry = await service.create(
            session,
            writer=writer,
            principal=principal,
            namespace_id=namespace_id,
            payload=payload,
            message=message,
            if_none_match=if_none_match,
        )
    except Proposed as done:
        return proposed(done.proposal)
    return _shown(policy, entry, 201)


async def replace(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: ConfigReplace,
    message: str | None,
    if_match: str | None,
    if_none_match: str | None,
) -> Written:
    """``PUT …/configs/{key}``: 200 with the entry, 201 when the key did not exist."""
    try:
        entry, created = await service.replace_entry(
            session,
            writer=writer,
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            payload=payload,
            message=message,
            if_match=if_match,
            if_none_match=if_none_match,
        )
    except Proposed as done:
        return proposed(done.proposal)
    return _shown(policy, entry, 201 if created else 200)


async def patch(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: ConfigPatch,
    message: str | None,
    if_match: str | None,
) -> Written:
    """``PATCH …/configs/{key}``: 200 with the entry."""
    try:
        entry = await service.patch(
            session,
            writer=writer,
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            payload=payload,
            message=message,
            if_match=if_match,
        )
    except Proposed as done:
        return proposed(done.proposal)
    return _shown(policy, entry, 200)


async def delete(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    message: str | None,
    if_match: str | None,
) -> Written:
    """``DELETE …/configs/{key}``: 204."""
    try:
        await service.delete(
            session,
            writer=writer,
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            message=message,
            if_match=if_match,
        )
    except Proposed as done:
        return proposed(done.proposal)
    return Written(204)
