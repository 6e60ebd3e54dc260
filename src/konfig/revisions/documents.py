"""Whole-namespace writes: replacing the document, importing a file (yaml, json, env,
properties).

Every write here is one revision through ``commit_changes``, planned as a diff from the
current state (a dry run answers the diff alone). A masked secret (``********``) in a document
or import stands for the value already stored, so an export made without ``reveal`` can be
edited and imported back without losing its secrets. Reads are in ``konfig.revisions.exports``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.guardrails import changed_rules, check_rules
from konfig.configs.schemas import KEPT_FIELDS, MASK
from konfig.configs.types import Limits, Problem, check_entry
from konfig.errors import ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.revisions import formats, repository
from konfig.revisions.flat_entries import flat_builder
from konfig.revisions.formats import Format, StructuredFormat
from konfig.revisions.schemas import ChangeResult, Document, DocumentEntry
from konfig.revisions.service import check_revision_match
from konfig.revisions.states import (
    Builder,
    State,
    diff_states,
    differing_fields,
    secret_keys,
    shown_as,
    state_of_entry,
)
from konfig.revisions.writer import (
    EntryDraft,
    WritePolicy,
    commit_changes,
    lock_namespace,
    validation_error,
)
from konfig.users.models import Role

Mode = Literal["merge", "replace"]
_PARSE_IN_THREAD = 64 * 1024


def check_all(
    drafts: list[EntryDraft], limits: Limits, problems: dict[str, list[Problem]], *, values: bool
) -> None:
    """One error naming every bad entry: the builder's problems, repeated keys and (``values``)
    each draft's validation.

    A write that has found no problem yet leaves the values to ``commit_changes``, which checks
    every draft it writes; an unchanged draft equals a stored, already valid entry.
    """
    seen: set[str] = set()
    for draft in drafts:
        if draft.key in seen:
            problems.setdefault(draft.key, []).append(
                Problem("key", "unique", "the key appears more than once")
            )
        seen.add(draft.key)
    if values or problems:
        for draft in drafts:
            found = check_entry(
                draft.value_type,
                draft.value,
                draft.validation_schema,
                limits,
                secret=draft.is_secret,
                key=draft.key,
            )
            if found:
                problems.setdefault(draft.key, []).extend(found)
    if problems:
        raise validation_error(problems)


async def current_states(
    session: AsyncSession, policy: WritePolicy, namespace: Namespace
) -> dict[str, State]:
    found = await repository.entries(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
    )
    return {e.key: state_of_entry(policy, e) for e in found}


async def apply(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    namespace: Namespace,
    actor: str,
    build: Builder,
    replace: bool,
    dry_run: bool,
    message: str | None,
    reveal: bool,
    principal: Principal | None,
    keep_absent_secrets: bool = False,
) -> ChangeResult:
    """Plan the change from the current state, then (unless a dry run) commit it as one revision.

    ``namespace`` must be locked unless this is a dry run. With ``replace`` every key the build
    leaves out is deleted (secret ones kept when ``keep_absent_secrets``). ``principal`` is who
    asks (changing an existing key's rules needs an admin); None: an operator at the server.
    """
    current = await current_states(session, policy, namespace)
    drafts, problems = build(current)
    if principal is not None:
        check_rules(
            principal,
            namespace.name,
            {d.key: changed_rules(current[d.key], d) for d in drafts if d.key in current},
        )
    check_all(drafts, policy.limits, problems, values=dry_run)
    desired = {d.key: State.of_draft(d) for d in drafts}
    deletes = [
        key
        for key, state in current.items()
        if replace and key not in desired and not (keep_absent_secrets and state.is_secret)
    ]
    old: dict[str, State] = {key: current[key] for key in deletes}
    new: dict[str, State] = {}
    for key, state in desired.items():
        before = current.get(key)
        if before is None or differing_fields(before, state):
            new[key] = state
            if before is not None:
                old[key] = before
    secret_now = {k for k, s in current.items() if s.is_secret}
    if reveal:
        await audit.record_reveal(
            session, namespace=namespace.name, keys=secret_keys(old, new, secret_now), via="diff"
        )
    show = shown_as(reveal=reveal, secret_now=secret_now)
    previous = namespace.revision
    if dry_run or not (new or deletes):
        return ChangeResult(
            namespace_id=namespace.id,
            revision=previous,
            previous_revision=previous,
            committed=False,
            dry_run=dry_run,
            diff=diff_states(old, new, from_revision=previous, to_revision=None, show=show),
        )
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        actor=actor,
        upserts=[state.draft(key) for key, state in new.items()],
        deletes=deletes,
        message=message,
        locked=namespace,
        principal=principal,
    )
    return ChangeResult(
        namespace_id=namespace.id,
        revision=outcome.namespace.revision,
        previous_revision=previous,
        committed=outcome.revision is not None,
        dry_run=False,
        diff=diff_states(old, new, from_revision=previous, to_revision=outcome.revision, show=show),
        change_request=outcome.proposal,
    )


def parse_document(data: Any) -> Document:
    """A ``Document`` from parsed data; errors name where, never the rejected value."""
    try:
        return Document.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        first = errors[0]
        where = ".".join(first["loc"]) or "document"
        raise ValidationFailed(
            f"{where}: {first['msg']}"
            + (f"; {len(errors) - 1} more problem(s) in details.errors" if len(errors) > 1 else ""),
            {"rule": "document", "errors": errors},
        ) from exc


async def load_document(body: bytes, kind: StructuredFormat) -> Document:
    if len(body) > _PARSE_IN_THREAD:  # a large body must not stall the other requests
        data = await asyncio.to_thread(formats.load_structured, body, kind)
    else:
        data = formats.load_structured(body, kind)
    return parse_document(data)


def document_builder(entries: list[DocumentEntry]) -> Builder:
    """Drafts from a document's entries: what an entry leaves out of an existing key keeps the
    key's setting (a secret stays secret unless the entry says ``is_secret: false``)."""

    def build(current: dict[str, State]) -> tuple[list[EntryDraft], dict[str, list[Problem]]]:
        problems: dict[str, list[Problem]] = {}
        drafts = []
        for e in entries:
            stored = current.get(e.key)
            draft = EntryDraft(
                e.key, e.value, e.value_type, e.validation_schema, e.description, e.is_secret
            )
            if stored is not None:
                kept = KEPT_FIELDS - e.model_fields_set
                draft = replace(draft, **{name: getattr(stored, name) for name in kept})
            if draft.value == MASK and stored is not None and stored.is_secret:
                draft = replace(draft, value=stored.value)
            elif draft.value == MASK and draft.is_secret:
                problems.setdefault(e.key, []).append(
                    Problem(
                        "value",
                        "masked",
                        f"the value is the mask {MASK} but no secret is stored under this key "
                        "to keep: give the real value",
                    )
                )
            drafts.append(draft)
        return drafts, problems

    return build


async def _writable(
    session: AsyncSession, namespace: Namespace, *, dry_run: bool, if_match: str | None
) -> Namespace:
    """``namespace`` (already checked writable), locked unless this is a dry run."""
    if not dry_run:
        namespace = await lock_namespace(
            session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
        )
    check_revision_match(if_match, namespace)
    return namespace


async def put_document(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    body: bytes,
    content_type: str | None,
    dry_run: bool,
    if_match: str | None,
    message: str | None,
    reveal: bool,
) -> ChangeResult:
    """Replace every entry of the namespace with the document's, in one revision."""
    principal.require_somewhere(Role.editor)
    found = await namespaces.get(
        session,
        principal=principal,
        namespace_id=namespace_id,
        permission="write",
        reveal=reveal,
    )
    parsed = await load_document(body, formats.structured_format(content_type))
    namespace = await _writable(session, found, dry_run=dry_run, if_match=if_match)
    return await apply(
        session,
        policy=policy,
        namespace=namespace,
        actor=principal.actor,
        build=document_builder(parsed.entries),
        replace=True,
        dry_run=dry_run,
        message=parsed.message or message or "replace the document",
        reveal=reveal,
        principal=principal,
    )


async def import_file(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    body: bytes,
    content_type: str | None,
    kind: Format | None,
    mode: Mode,
    dry_run: bool,
    if_match: str | None,
    message: str | None,
    reveal: bool,
) -> ChangeResult:
    """Import a yaml, json, env or properties file: merge into the namespace or replace it."""
    principal.require_somewhere(Role.editor)
    found = await namespaces.get(
        session,
        principal=principal,
        namespace_id=namespace_id,
        permission="write",
        reveal=reveal,
    )
    if kind is None and formats.media_type(content_type) == "text/plain":
        # A media type the import reads, but which of its formats? The parameter is missing.
        raise ValidationFailed(
            "format: a text/plain body needs ?format=env or ?format=properties",
            {"field": "format"},
        )
    if kind is None:
        try:
            kind = formats.structured_format(content_type)
        except formats.UnsupportedMediaType as exc:
            raise formats.UnsupportedMediaType(
                "say which format this is: ?format=yaml, json, env or properties", exc.details
            ) from exc
    if kind in ("json", "yaml"):
        parsed = await load_document(body, kind)
        build = document_builder(parsed.entries)
        message = parsed.message or message
    else:
        lines = formats.parse_flat(kind, formats.decode_text(body))  # type: ignore[arg-type]
        build = flat_builder(kind, lines, merge=mode == "merge")  # type: ignore[arg-type]
    namespace = await _writable(session, found, dry_run=dry_run, if_match=if_match)
    return await apply(
        session,
        policy=policy,
        namespace=namespace,
        actor=principal.actor,
        build=build,
        replace=mode == "replace",
        dry_run=dry_run,
        message=message or f"import {kind} ({mode})",
        reveal=reveal,
        principal=principal,
    )
