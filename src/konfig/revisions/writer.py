"""The one way entries change: validate, encrypt, and record a revision, in one transaction.

Every write path (single entries, documents, rollback, import, restore) goes through
``commit_changes``. It locks the namespace row, so concurrent writers to one namespace queue up
and every committed change raises the revision by exactly one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from konfig.audit.context import current as audit_context
from konfig.changes.schemas import ChangeRequestSummary
from konfig.configs import references
from konfig.configs.models import ConfigEntry
from konfig.configs.references import NamespaceDrop, ReferenceCheck, ReferenceWrite
from konfig.configs.types import Limits, Problem, check_entry
from konfig.db.base import detached, utcnow
from konfig.db.session import COMMITTED
from konfig.errors import NotFound, PayloadTooLarge, ValidationFailed
from konfig.namespaces.models import Namespace
from konfig.namespaces.templates import contract_problems
from konfig.revisions.models import EntryVersion
from konfig.revisions.rows import Committed, EntryDraft, Rows, random_ids, write_rows
from konfig.revisions.values import decrypt_value, encrypt_value
from konfig.security.crypto import DecryptionError, Keyring, load_keyring
from konfig.settings import Settings

if TYPE_CHECKING:
    from konfig.auth.principal import Principal

__all__ = [
    "Committed",
    "EntryDraft",
    "Outcome",
    "Proposed",
    "WritePolicy",
    "check_drafts",
    "commit_changes",
    "current_entries",
    "decrypt_value",
    "encrypt_value",
    "lock_namespace",
    "random_ids",
    "validation_error",
    "write_policy",
]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class WritePolicy:
    keyring: Keyring
    limits: Limits
    max_keys: int
    # Checks of values holding references (``konfig.configs.references``): the delivery layer,
    # which resolves, adds its own when the app is wired; none in the CLI.
    reference_checks: list[ReferenceCheck] = field(default_factory=list, compare=False)

    async def check_references(
        self, session: AsyncSession | None, write: ReferenceWrite | NamespaceDrop
    ) -> None:
        """422 naming the chain when a value's references cannot be resolved (a missing target
        without default, a cycle, a chain too deep, a namespace the writer may not read); 409
        naming every referrer when a namespace deleted whole leaves references unresolved."""
        for check in self.reference_checks:
            await check(session, write)


@dataclass
class Outcome:
    namespace: Namespace
    revision: int | None  # None: nothing changed, nothing recorded
    changed: list[str] = field(default_factory=list)
    # The rows as written, by key (created or updated; deleted keys are absent).
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Set instead of a revision when the namespace is protected: the change request the change
    # went into (konfig.changes).
    proposal: ChangeRequestSummary | None = None

    def written(self, key: str) -> ConfigEntry | None:
        """The entry ``key`` as this change wrote it: a detached object built from the row,
        so answering with it costs no query (built on demand: a document writes thousands)."""
        row = self.rows.get(key)
        return None if row is None else detached(ConfigEntry, row)


class Proposed(Exception):
    """A write to a protected namespace went into a change request instead of committing;
    raised where the answer is made of the entry written (single-entry writes)."""

    def __init__(self, proposal: ChangeRequestSummary) -> None:
        super().__init__(f"proposed in change request {proposal.id}")
        self.proposal = proposal


def write_policy(settings: Settings) -> WritePolicy:
    """The keyring and limits every writer uses, from the settings: the server's, the CLI's."""
    keyring = load_keyring(
        settings.encryption_keys, settings.data_dir, production=settings.is_production
    )
    limits = Limits(
        max_value_bytes=settings.max_value_bytes, max_json_depth=settings.max_json_depth
    )
    return WritePolicy(keyring=keyring, limits=limits, max_keys=settings.max_keys_per_namespace)


def validation_error(problems: dict[str, list[Problem]]) -> ValidationFailed | PayloadTooLarge:
    """One error naming every bad entry; the first problem names its key and rule in the message."""
    errors = [p.as_dict(key) for key, found in problems.items() for p in found]
    first_key, first = next((k, ps[0]) for k, ps in problems.items())
    message = f"{first_key}: {first.message} (rule: {first.rule})"
    if len(errors) > 1:
        message += f"; {len(errors) - 1} more problem(s) in details.errors"
    details = {"key": first_key, "rule": first.rule, "errors": errors}
    if all(p.too_large for found in problems.values() for p in found):
        return PayloadTooLarge(message, details)
    return ValidationFailed(message, details)


def check_drafts(drafts: Sequence[EntryDraft], limits: Limits) -> None:
    problems: dict[str, list[Problem]] = {}
    seen: set[str] = set()
    for draft in drafts:
        if draft.key in seen:
            problems.setdefault(draft.key, []).append(
                Problem("key", "unique", "the key appears more than once")
            )
        seen.add(draft.key)
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


async def lock_namespace(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> Namespace:
    """The namespace row, locked for this transaction (SQLite: the writer holds the lock)."""
    query = (
        select(Namespace)
        .where(Namespace.id == namespace_id, Namespace.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    namespace = (await session.execute(query)).scalar_one_or_none()
    if namespace is None:
        raise NotFound(f"no namespace {namespace_id}")
    return namespace


async def current_entries(
    session: AsyncSession, namespace: Namespace, keys: Sequence[str]
) -> dict[str, ConfigEntry]:
    query = (
        select(ConfigEntry)
        .where(ConfigEntry.namespace_id == namespace.id)
        .execution_options(populate_existing=True)
    )
    if len(keys) <= _CHUNK:
        query = query.where(ConfigEntry.key.in_(keys))
    wanted = set(keys)
    return {e.key: e for e in (await session.execute(query)).scalars() if e.key in wanted}


def _unchanged(entry: ConfigEntry, draft: EntryDraft, policy: WritePolicy) -> bool:
    if (
        entry.value_type != draft.value_type
        or (entry.validation_schema or None) != (draft.validation_schema or None)
        or entry.description != draft.description
        or entry.is_secret != draft.is_secret
    ):
        return False
    try:
        current = decrypt_value(
            policy.keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except DecryptionError:  # a damaged stored value is replaced, never an obstacle to writing
        return False
    return bool(orjson.dumps(current) == orjson.dumps(draft.value))


async def last_versions_of(
    session: AsyncSession | AsyncConnection, namespace_id: uuid.UUID, keys: list[str]
) -> dict[str, int]:
    """The newest version each key ever had (keys that never existed are absent)."""
    found: dict[str, int] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        query = (
            select(EntryVersion.key, func.max(EntryVersion.version))
            .where(EntryVersion.namespace_id == namespace_id, EntryVersion.key.in_(chunk))
            .group_by(EntryVersion.key)
        )
        found.update({key: int(version) for key, version in (await session.execute(query)).all()})
    return found


async def commit_changes(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    tenant_id: uuid.UUID,
    namespace_id: uuid.UUID,
    actor: str,
    upserts: Sequence[EntryDraft] = (),
    deletes: Sequence[str] = (),
    message: str | None = None,
    locked: Namespace | None = None,
    current: dict[str, ConfigEntry] | None = None,
    principal: Principal | None = None,
    approved: bool = False,
) -> Outcome:
    """Apply upserts and deletions as one revision; unchanged keys are skipped.

    ``locked`` and ``current`` spare the queries when the caller already holds the namespace
    lock and has read, under it, the current entries of every key it passes. ``principal``:
    who writes, whose right to read what references name is checked (None: an operator).
    Raises ``ValidationFailed`` (every bad entry listed) before anything is written.

    On a protected namespace, a change made for ``principal`` goes into their draft change
    request (``Outcome.proposal``) unless it bypasses the protection
    (``konfig.changes.proposals``); ``approved``: it is a change request's merge. A change
    without a principal (a restore, the CLI's import) is an operator's and commits.
    """
    check_drafts(upserts, policy.limits)
    namespace = locked or await lock_namespace(
        session, tenant_id=tenant_id, namespace_id=namespace_id
    )
    if current is None:
        keys = [d.key for d in upserts] + list(deletes)
        current = await current_entries(session, namespace, keys)

    creates, updates, removals = classify(policy, current, upserts, deletes)
    any_change = bool(creates or updates or removals)
    if any_change:  # checked whether it commits or goes into a change request
        if namespace.contract:  # a template governs it: the change keeps to the contract
            broken = contract_problems(
                namespace.contract, [*creates, *updates], [e.key for e in removals], policy.limits
            )
            if broken:
                raise validation_error(broken)
        if removals or any(references.mentions(d.value) for d in (*creates, *updates)):
            await policy.check_references(
                session,
                ReferenceWrite(
                    tenant_id=tenant_id,
                    namespace_id=namespace.id,
                    principal=principal,
                    values={d.key: d.value for d in (*creates, *updates)},
                    deleted=frozenset(e.key for e in removals),
                ),
            )
    if creates:
        count = await entry_count(session, namespace.id)
        check_key_limit(policy, namespace, count + len(creates) - len(removals))
    if namespace.protection and principal is not None and not approved:
        from konfig.changes import proposals  # the changes feature writes through this module

        updated = {d.key for d in updates}
        intercepted = await proposals.intercept(
            session,
            policy=policy,
            namespace=namespace,
            principal=principal,
            changes=(creates, updates, removals),
            current=current,
            message=message,
            # Keys written back to what is committed: taken out of the author's draft.
            reverted=[d.key for d in upserts if d.key in current and d.key not in updated],
        )
        if intercepted.proposal is not None:
            return Outcome(namespace, None, proposal=intercepted.proposal)
        message = intercepted.message
    if not any_change:
        return Outcome(namespace, None)
    # A namespace that never had a revision has no history to continue.
    last_versions = (
        await last_versions_of(session, namespace.id, [d.key for d in creates])
        if namespace.revision > 0 and creates
        else {}
    )
    rows = Rows()
    written = rows.revise(
        keyring=policy.keyring,
        namespace=namespace,
        actor=actor,
        message=message,
        creates=creates,
        updates=updates,
        removals=removals,
        current=current,
        last_versions=last_versions,
        now=utcnow(),
        context=audit_context(),
    )
    await session.flush()  # what the caller added before (a new namespace) goes first
    await write_rows(await session.connection(), rows)
    session.info.setdefault(COMMITTED, []).extend(rows.committed)
    changed = [d.key for d in creates] + [d.key for d in updates] + [e.key for e in removals]
    return Outcome(namespace, namespace.revision, sorted(changed), written)


def classify(
    policy: WritePolicy,
    current: dict[str, ConfigEntry],
    upserts: Sequence[EntryDraft],
    deletes: Sequence[str],
) -> tuple[list[EntryDraft], list[EntryDraft], list[ConfigEntry]]:
    """Creates, real updates (unchanged keys are skipped) and removals of existing keys."""
    creates = [d for d in upserts if d.key not in current]
    updates = [d for d in upserts if d.key in current and not _unchanged(current[d.key], d, policy)]
    removals = [current[k] for k in dict.fromkeys(deletes) if k in current]
    return creates, updates, removals


def check_key_limit(policy: WritePolicy, namespace: Namespace, total: int) -> None:
    if total > policy.max_keys:
        raise ValidationFailed(
            f"namespace {namespace.name} would hold {total} keys, "
            f"over the limit of {policy.max_keys} keys per namespace",
            {"rule": "max_keys_per_namespace", "limit": policy.max_keys},
        )


async def entry_count(session: AsyncSession | AsyncConnection, namespace_id: uuid.UUID) -> int:
    query = select(func.count()).where(ConfigEntry.namespace_id == namespace_id)
    return int(await session.scalar(query) or 0)
