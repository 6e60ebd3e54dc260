"""A change to a protected namespace, met where every change commits
(``konfig.revisions.writer.commit_changes``): it goes into its author's draft change request,
or, under ``soft`` enforcement and with a reason, an admin's change commits as a bypass.

The reason travels in the ``X-Konfig-Bypass-Reason`` header of any write (single entries,
documents, imports, rollbacks): it is audited (``change_request.bypass``), announced to
webhooks (``change_request.bypassed``) and written into the revision's message, so history
shows the bypass.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.audit.context import header
from konfig.auth.principal import Principal
from konfig.changes import repository, views
from konfig.changes.models import ChangeRequest
from konfig.changes.schemas import ChangeRequestSummary
from konfig.configs.models import ConfigEntry
from konfig.db.base import utcnow
from konfig.db.outbox import listed_keys, record_event
from konfig.errors import Forbidden, ValidationFailed
from konfig.input_guard import text_refusal
from konfig.namespaces.models import Namespace
from konfig.revisions.rows import EntryDraft
from konfig.revisions.values import encrypt_value
from konfig.revisions.writer import WritePolicy
from konfig.users.models import Role

BYPASS_HEADER = "X-Konfig-Bypass-Reason"
_BYPASS = BYPASS_HEADER.lower().encode()
MAX_REASON = 500
MAX_MESSAGE = 1000  # revisions.message


@dataclass(frozen=True, slots=True)
class Intercepted:
    proposal: ChangeRequestSummary | None  # None: the change commits (a bypass)
    message: str | None  # the revision's message, when it commits


def bypass_reason() -> str | None:
    """The current request's bypass reason (None: it asks for none)."""
    raw = header(_BYPASS)
    if raw is None:
        return None
    where = ["header", BYPASS_HEADER]
    try:
        reason = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValidationFailed(f"{BYPASS_HEADER} is not valid UTF-8 text", {"loc": where}) from None
    refused = text_refusal(reason, where)
    if refused is not None:
        raise refused
    if not reason:
        raise ValidationFailed(
            f"{BYPASS_HEADER} is empty: a bypass needs a reason", {"loc": where, "rule": "reason"}
        )
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"{BYPASS_HEADER} is over {MAX_REASON} characters", {"loc": where, "rule": "reason"}
        )
    return reason


async def intercept(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    namespace: Namespace,
    principal: Principal,
    changes: tuple[Sequence[EntryDraft], Sequence[EntryDraft], Sequence[ConfigEntry]],
    current: dict[str, ConfigEntry],
    message: str | None,
    reverted: Sequence[str] = (),
) -> Intercepted:
    """The change request a change goes into (``reverted``: keys written back to what is
    committed, which leave the author's draft), or the message of a bypass that commits it."""
    creates, updates, removals = changes
    keys = sorted([d.key for d in creates] + [d.key for d in updates] + [e.key for e in removals])
    reason = bypass_reason()
    if reason is not None:
        if keys:
            await _bypass(session, namespace, principal, reason, keys)
        marked = f"[bypass: {reason}] {message or ''}".strip()
        return Intercepted(None, marked[:MAX_MESSAGE])
    keyring = policy.keyring
    request = await repository.draft_of(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, author=principal.actor
    )
    if not keys:  # nothing to propose: perhaps keys to take back out of the draft
        return await _withdraw(session, principal, namespace, request, reverted, message)
    if request is None:
        request = ChangeRequest(
            id=uuid.uuid4(),
            tenant_id=namespace.tenant_id,
            namespace_id=namespace.id,
            author=principal.actor,
            status="draft",
            title=message or "",
            base_revision=namespace.revision,
            changes=[],
        )
        await repository.add(session, request)
    items = {item["key"]: item for item in request.changes}
    for draft in [*creates, *updates]:
        before = current.get(draft.key)
        ciphertext = encrypt_value(
            keyring, namespace.tenant_id, namespace.id, draft.key, draft.value
        )
        items[draft.key] = {
            "key": draft.key,
            "action": "set",
            "base_version": None if before is None else before.version,
            "value": base64.b64encode(ciphertext).decode(),
            "value_type": draft.value_type,
            "validation_schema": draft.validation_schema,
            "description": draft.description,
            "is_secret": draft.is_secret,
        }
    for entry in removals:
        items[entry.key] = {"key": entry.key, "action": "delete", "base_version": entry.version}
    request.changes = [items[key] for key in sorted(items)]
    request.base_revision = namespace.revision
    if not request.title and message:
        request.title = message[:500]
    request.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        action="change_request.propose",
        target_type="change_request",
        target=str(request.id),
        namespace=namespace.name,
        summary={"keys": keys[:200], "keys_total": len(keys)},
    )
    (summary,) = await views.summaries(session, principal=principal, requests=[request])
    return Intercepted(summary, None)


async def _withdraw(
    session: AsyncSession,
    principal: Principal,
    namespace: Namespace,
    request: ChangeRequest | None,
    reverted: Sequence[str],
    message: str | None,
) -> Intercepted:
    """Take keys written back to their committed state out of the author's draft; nothing
    happens (the write answers as unchanged) when the draft does not hold them."""
    taken = set(reverted)
    if request is None or not any(item["key"] in taken for item in request.changes):
        return Intercepted(None, message)
    request.changes = [item for item in request.changes if item["key"] not in taken]
    request.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        action="change_request.withdraw_keys",
        target_type="change_request",
        target=str(request.id),
        namespace=namespace.name,
        summary={"keys": sorted(taken)[:200]},
    )
    (summary,) = await views.summaries(session, principal=principal, requests=[request])
    return Intercepted(summary, None)


async def _bypass(
    session: AsyncSession,
    namespace: Namespace,
    principal: Principal,
    reason: str,
    keys: list[str],
) -> None:
    if namespace.protection != "soft":
        raise Forbidden(
            f"namespace {namespace.name} is under hard protection: its changes go through "
            "change requests, with no bypass",
            {"namespace": namespace.name, "enforcement": namespace.protection},
        )
    held = principal.role_on(namespace.name) if principal.kind == "user" else None
    if held is None or not held.at_least(Role.admin):
        raise Forbidden(
            f"only an admin or owner of {namespace.name} may bypass its protection",
            {"namespace": namespace.name, "needed": Role.admin.value},
        )
    await audit.record(
        session,
        action="change_request.bypass",
        target_type="namespace",
        target=namespace.name,
        namespace=namespace.name,
        summary={"reason": reason, **listed_keys(keys)},
    )
    await record_event(
        session,
        tenant_id=namespace.tenant_id,
        type="change_request.bypassed",
        namespace_id=namespace.id,
        namespace=namespace.name,
        data={
            "namespace": namespace.name,
            "actor": principal.actor,
            "reason": reason,
            **listed_keys(keys),
        },
    )
