"""Whole-namespace reads: the document and the export (yaml, json, env, properties).

Either shows the namespace now or at a past revision, secrets masked (``********``) unless
revealed: an export made without ``reveal`` can be edited and imported back without losing its
secrets, since the mask stands for the value already stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.schemas import MASK
from konfig.errors import Conflict, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.revisions import formats, repository
from konfig.revisions.formats import FlatFormat, Format
from konfig.revisions.states import State, state_of_version
from konfig.revisions.writer import WritePolicy


@dataclass(frozen=True, slots=True)
class Exported:
    key: str
    state: State
    masked: bool

    def as_document_entry(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": MASK if self.masked else self.state.value,
            "value_type": self.state.value_type,
            "validation_schema": self.state.validation_schema,
            "description": self.state.description,
            "is_secret": self.state.is_secret,
        }


async def namespace_entries(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    namespace: Namespace,
    revision: int,
    reveal: bool,
    with_secrets: bool = True,
) -> list[Exported]:
    """The namespace at ``revision``, by key; secrets masked unless revealed, or left out."""
    live = await repository.snapshot(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, revision=revision
    )
    secret = await repository.secret_now(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, keys=list(live)
    )
    if reveal and with_secrets:
        await audit.record_reveal(
            session,
            namespace=namespace.name,
            keys=[k for k, v in live.items() if v.is_secret or k in secret],
            via=f"document at revision {revision}",
        )
    found = []
    for key, version in live.items():
        is_secret = version.is_secret or key in secret
        if is_secret and not with_secrets:
            continue
        masked = is_secret and not reveal
        state = (
            State(
                None,
                version.value_type,
                version.validation_schema,
                version.description,
                version.is_secret,
                version.version,
            )
            if masked
            else state_of_version(policy, version)
        )
        found.append(Exported(key, state, masked))
    return found


async def _readable(
    session: AsyncSession,
    principal: Principal,
    namespace_id: uuid.UUID,
    revision: int | None,
    *,
    reveal: bool,
) -> tuple[Namespace, int]:
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )
    revision = namespace.revision if revision is None else revision
    if revision > namespace.revision:
        raise ValidationFailed(
            f"namespace {namespace.name} has no revision {revision} (its latest is "
            f"{namespace.revision})",
            {"rule": "revision", "latest_revision": namespace.revision},
        )
    return namespace, revision


async def document(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    reveal: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The namespace's entries in document shape, and the revision they are at (the ETag)."""
    namespace, revision = await _readable(session, principal, namespace_id, None, reveal=reveal)
    found = await namespace_entries(
        session, policy=policy, namespace=namespace, revision=revision, reveal=reveal
    )
    return [e.as_document_entry() for e in found], revision


def render_flat(kind: FlatFormat, entries: list[Exported], header: str) -> bytes:
    lines: list[tuple[str, str]] = []
    owners: dict[str, str] = {}
    for entry in entries:
        value, value_type = entry.state.value, entry.state.value_type
        if entry.masked:  # one line holding the bare mask, whatever the type
            value, value_type = MASK, "string"
        for path, text in formats.flatten(value, value_type):
            name = formats.flat_name(kind, entry.key, path)
            if name in owners:
                raise Conflict(
                    f"{owners[name]} and {entry.key} both become {name} in {kind} format: "
                    "export as yaml or json, or rename one of them",
                    {"name": name, "keys": sorted({owners[name], entry.key})},
                )
            owners[name] = entry.key
            lines.append((name, text))
    return formats.render_flat(kind, lines, header)


async def export(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    kind: Format,
    reveal: bool,
    revision: int | None,
) -> tuple[bytes, int]:
    """The namespace (now or at ``revision``) as a file, and the revision it shows."""
    namespace, revision = await _readable(session, principal, namespace_id, revision, reveal=reveal)
    found = await namespace_entries(
        session, policy=policy, namespace=namespace, revision=revision, reveal=reveal
    )
    header = f"konfig export of {namespace.name} at revision {revision}"
    if any(e.masked for e in found):
        header += f"; secret values masked as {MASK} (importing the mask keeps the stored value)"
    if kind in ("env", "properties"):
        return render_flat(kind, found, header), revision
    body = {"entries": [e.as_document_entry() for e in found]}
    if kind == "json":
        return formats.dump_structured(body, "json"), revision
    return f"# {header}\n".encode() + formats.dump_structured(body, "yaml"), revision
