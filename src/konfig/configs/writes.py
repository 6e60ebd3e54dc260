"""Single-entry writes: their rules, and their group commit.

A write of one key (create, replace, patch, delete) is an ``EntryWrite``. ``apply_writes`` takes
several in one transaction: it locks their namespaces once, reads their keys once, applies each
write's rules in arrival order (each sees the ones before it, and each committed change is a
revision of its own), and writes all their rows in one set of statements.

``EntryWriter`` is that group commit. A request whose session has not started a transaction
(an API write: its principal came from a cache, nothing was read) joins a queue; one task
commits whatever has queued up while the previous commit ran, then answers each write. One
writer alone still commits at once; fifty at once share one transaction instead of taking
turns at the namespace lock, which on SQLite is the whole database. A write whose session is
already in a transaction (a web page that has read the entry first) runs in that transaction,
through the same rules.

A write refused by its rules (not found, forbidden, precondition, validation) leaves nothing
and answers its own error; the others in the batch go on. Should the batch's transaction fail,
each write is retried alone, so one bad write never fails its neighbours.

A write to a protected namespace (``Namespace.protection``, read under its lock) never commits
in a batch: once its rules allow it, it is done again in a session of its own through
``commit_changes``, which puts it into its author's change request (raising ``Proposed``) or
commits it as a bypass (``konfig.changes.proposals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from konfig.audit.context import AuditContext, current
from konfig.auth.principal import Principal
from konfig.configs import references
from konfig.configs.guardrails import changed_rules, check_rules
from konfig.configs.models import ConfigEntry
from konfig.configs.references import ReferenceWrite
from konfig.configs.write_repository import CoreStore, Place, PostgresStore, SqliteStore, Store
from konfig.db.base import detached, utcnow
from konfig.db.session import (
    COMMITTED,
    WRITE_OPTION,
    Notices,
    Transactions,
    bind_tenant,
    request_session,
)
from konfig.db.sqlite_driver import OneTripConnection
from konfig.errors import Conflict, KonfigError, NotFound, PreconditionFailed
from konfig.input_guard import match_tags
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.namespaces.templates import contract_problems
from konfig.revisions.rows import Committed, EntryDraft, Rows
from konfig.revisions.writer import (
    Proposed,
    WritePolicy,
    check_drafts,
    check_key_limit,
    classify,
    commit_changes,
    current_entries,
    lock_namespace,
    validation_error,
)
from konfig.users.models import Role

log = logging.getLogger("konfig.writes")

MAX_BATCH = 200

CommitHook = Callable[[Sequence[Committed]], Awaitable[None]]


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, current: ConfigEntry | None) -> None:
    """412 unless ``If-Match`` (when sent) names the entry's current version."""
    if if_match is None:
        return
    if current is None:
        raise PreconditionFailed("If-Match was sent but the entry does not exist")
    tags = match_tags(if_match)
    if "*" not in tags and etag(current.version) not in tags:
        raise PreconditionFailed(
            f"the entry {current.key} is at version {current.version}, not the one in If-Match: "
            "read it again and reapply your change",
            {"current_version": current.version},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryWrite:
    """One key's change as a request asks for it."""

    principal: Principal
    namespace_id: uuid.UUID
    key: str
    draft: EntryDraft | None = None  # the new state; None with no ``patch``: delete the key
    # A patch: the new state, from the entry as it stands (the key must exist).
    patch: Callable[[ConfigEntry], EntryDraft] | None = None
    # Fields the request left out (a PUT): an existing entry keeps its own, a new one takes
    # the draft's defaults. A secret is never made plain, nor a schema dropped, by omission.
    keep: frozenset[str] = frozenset()
    message: str | None = None
    if_match: str | None = None
    if_none_match: str | None = None
    must_exist: bool = False
    must_not_exist: bool = False
    value: Any = None  # a patch's new value when it sends one (references are checked early)
    context: AuditContext = field(default_factory=AuditContext)  # set by EntryWriter.write


class ProtectionNeeded(KonfigError):
    """A write to a protected namespace met in a batch, which never commits one: the writer
    does it again in a session of its own (``EntryWriter``). Answered as it is only where no
    writer handles it."""

    code, status_code = "PROTECTED", 409


@dataclass(frozen=True, slots=True)
class EntryWritten:
    entry: ConfigEntry | None  # as written (as it was, when nothing changed); None: deleted
    existed: bool
    revision: int | None  # None: nothing changed, nothing recorded


def _draft(
    write: EntryWrite, namespace: Namespace, current: ConfigEntry | None, policy: WritePolicy
) -> EntryDraft | None:
    """The key's new state (None: delete it), once the write's rules allow it."""
    namespaces.check_allowed(write.principal, namespace, "write")
    key = write.key
    if write.if_none_match is not None and write.if_none_match.strip() == "*" and current:
        raise PreconditionFailed(
            f"{key} already exists and If-None-Match: * refuses to overwrite it"
        )
    if write.must_not_exist and current is not None:
        raise Conflict(f"{key} already exists in {namespace.name}: use PUT or PATCH to change it")
    if (write.must_exist or write.patch is not None) and current is None:
        raise NotFound(f"no key {key} in namespace {namespace.name}")
    check_if_match(write.if_match, current)
    draft = write.draft
    if write.patch is not None and current is not None:
        draft = write.patch(current)
    elif write.keep and draft is not None and current is not None:
        draft = replace(draft, **{name: getattr(current, name) for name in write.keep})
    if draft is not None and current is not None:
        check_rules(write.principal, namespace.name, {key: changed_rules(current, draft)})
    if draft is not None and (write.patch is not None or write.keep):
        check_drafts([draft], policy.limits)  # made here: checked here, whole
    return draft


@dataclass
class _Batch:
    """What one transaction knows of the namespaces and keys its writes touch."""

    store: Store
    policy: WritePolicy
    namespaces: dict[uuid.UUID, Namespace]
    entries: dict[Place, ConfigEntry | None]
    rows: Rows = field(default_factory=Rows)
    counts: dict[uuid.UUID, int] = field(default_factory=dict)  # stored keys, per namespace
    added: dict[uuid.UUID, int] = field(default_factory=dict)  # keys this batch adds, less removed

    async def apply(self, write: EntryWrite) -> EntryWritten:
        namespace = self.namespaces.get(write.namespace_id)
        if namespace is None or namespace.tenant_id != write.principal.tenant_id:
            raise NotFound(f"no namespace {write.namespace_id}")
        place = (namespace.id, write.key)
        current = self.entries.get(place)
        draft = _draft(write, namespace, current, self.policy)
        if namespace.protection:
            raise ProtectionNeeded(
                f"namespace {namespace.name} is protected: its changes go through change requests",
                {"namespace": namespace.name},
            )
        if namespace.contract:  # a template governs it: the write keeps to the contract
            removed = [write.key] if draft is None and current is not None else []
            broken = contract_problems(
                namespace.contract, [draft] if draft else [], removed, self.policy.limits
            )
            if broken:
                raise validation_error(broken)
        stored = {write.key: current} if current is not None else {}
        creates, updates, removals = classify(
            self.policy, stored, [draft] if draft else [], [] if draft else [write.key]
        )
        if not (creates or updates or removals):
            return EntryWritten(current, current is not None, None)
        last_versions: dict[str, int] = {}
        if creates:
            if namespace.id not in self.counts:
                self.counts[namespace.id] = await self.store.count(namespace.id)
            total = self.counts[namespace.id] + self.added.get(namespace.id, 0) + 1
            check_key_limit(self.policy, namespace, total)
            last = await self._last_version(namespace, write.key)
            if last:
                last_versions[write.key] = last
        written = self.rows.revise(
            keyring=self.policy.keyring,
            namespace=namespace,
            actor=write.principal.actor,
            message=write.message,
            creates=creates,
            updates=updates,
            removals=removals,
            current=stored,
            last_versions=last_versions,
            now=utcnow(),
            context=write.context,
        )
        self.added[namespace.id] = self.added.get(namespace.id, 0) + len(creates) - len(removals)
        row = written.get(write.key)
        entry = None if row is None else detached(ConfigEntry, row)
        self.entries[place] = entry
        return EntryWritten(entry, current is not None, namespace.revision)

    async def _last_version(self, namespace: Namespace, key: str) -> int:
        """The newest version the key ever had (a key deleted and created again continues)."""
        fate = self.rows.keys.get((namespace.id, key))
        if fate is not None and fate.version is not None:
            return int(fate.version["version"])
        if namespace.revision == 0:  # a namespace without history has no versions
            return 0
        return await self.store.last_version(namespace.id, key)


async def apply_writes(
    store: Store,
    policy: WritePolicy,
    writes: Sequence[EntryWrite],
    notices: Notices | None = None,
) -> tuple[Rows, list[EntryWritten | KonfigError]]:
    """Apply ``writes`` in order in one transaction of ``store``: each answers what it wrote,
    or the error that refused it (having written nothing). ``notices``: what the other
    replicas are told inside the transaction (``konfig.db.session.notify_within``)."""
    ids = sorted({w.namespace_id for w in writes})
    places = sorted({(w.namespace_id, w.key) for w in writes})
    tenant_ids = sorted({w.principal.tenant_id for w in writes})
    namespaces, entries = await store.load(ids, places, tenant_ids)
    batch = _Batch(store, policy, namespaces, dict(entries))
    outcomes: list[EntryWritten | KonfigError] = []
    for write in writes:
        try:
            outcomes.append(await batch.apply(write))
        except KonfigError as error:
            outcomes.append(error)
    committed = batch.rows.committed
    await store.write(batch.rows, notices(committed, None) if notices and committed else [])
    return batch.rows, outcomes


_Pending = tuple[EntryWrite, "asyncio.Future[EntryWritten]"]


class EntryWriter:
    """The group commit of single-entry writes (one per process)."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: WritePolicy,
        hooks: list[CommitHook],
        notices: Callable[[], Notices | None] = lambda: None,
        *,
        transactions: Transactions | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.hooks = hooks  # told of each batch's revisions once committed, before the answers
        self.notices = notices  # the replicas' announcement, sent inside each batch
        # Sessions for writes to protected namespaces (None: they are refused with 409).
        self.transactions = transactions
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._held: tuple[AsyncConnection, Store] | None = None
        self.batches = 0  # transactions committed
        self._busy_total = 0.0  # seconds during which writes were queued or committing
        self._busy_since: float | None = None

    @property
    def queued(self) -> int:
        """Writes waiting for the next batch."""
        return len(self._queue)

    @property
    def committing(self) -> bool:
        """Whether a batch is being written (or waits for its namespaces' locks)."""
        return self._task is not None and not self._task.done()

    def busy_seconds(self) -> float:
        """Seconds, since this writer was made, during which it had writes to commit: how
        loaded the write path is, as a share of a stretch of time (the webhooks worker's)."""
        if self._busy_since is None:
            return self._busy_total
        return self._busy_total + time.monotonic() - self._busy_since

    async def write(self, session: AsyncSession | None, write: EntryWrite) -> EntryWritten:
        """Apply ``write``: in the session's transaction when it has begun one, or else in the
        next group commit. Raises the error that refused it."""
        write.principal.require_somewhere(Role.editor)
        write = replace(write, context=current())  # who and from where, for the audit log
        if write.draft is not None and not write.keep:
            check_drafts([write.draft], self.policy.limits)  # here: before it waits its turn
        try:
            if session is not None and session.in_transaction():
                checked = _reference_write(write)
                if checked is not None:
                    await self.policy.check_references(session, checked)
                return await self._in_session(session, write)
            future: asyncio.Future[EntryWritten] = asyncio.get_running_loop().create_future()
            self._queue.append((write, future))
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._drain(), name="konfig-entry-writer")
            # Shielded: a client that goes away does not cancel a write already queued or written.
            return await asyncio.shield(future)
        except ProtectionNeeded:
            if self.transactions is None:
                raise
            return await self._protected(session, write)

    async def _protected(self, session: AsyncSession | None, write: EntryWrite) -> EntryWritten:
        """A write to a protected namespace: proposed (``Proposed`` raised once its change
        request is committed) or, as a bypass, committed."""
        if session is not None and session.in_transaction():
            return await protected_write(session, self.policy, write)
        if self.transactions is None:  # checked by the caller
            raise RuntimeError("no sessions for a protected write")
        proposed: Proposed | None = None
        async with request_session(self.transactions, write=True) as own:
            await bind_tenant(own, write.principal.tenant_id)
            try:
                return await protected_write(own, self.policy, write)
            except Proposed as raised:  # the change request commits as the block ends
                proposed = raised
        raise proposed

    async def _in_session(self, session: AsyncSession, write: EntryWrite) -> EntryWritten:
        await session.flush()
        store = CoreStore(await session.connection())
        rows, (outcome,) = await apply_writes(store, self.policy, [write])
        if isinstance(outcome, KonfigError):
            raise outcome
        session.info.setdefault(COMMITTED, []).extend(rows.committed)
        return outcome

    async def close(self) -> None:
        """Finish the writes already queued, then let go of the connection."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._held is not None:
            connection, self._held = self._held[0], None
            with contextlib.suppress(Exception):
                await connection.invalidate()  # set up for this writer: never back to the pool
            with contextlib.suppress(Exception):
                await connection.close()

    async def _drain(self) -> None:
        self._busy_since = time.monotonic()
        try:
            await self._drain_queue()
        finally:
            self._busy_total += time.monotonic() - self._busy_since
            self._busy_since = None

    async def _drain_queue(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            batch = await self._checked(batch)
            if not batch:
                continue
            try:
                await self._commit(batch)
            except Exception as error:
                if len(batch) == 1:
                    _settle(batch[0][1], error)
                    continue
                log.warning(
                    "a group commit of %d writes failed (%s); retrying each alone",
                    len(batch),
                    type(error).__name__,
                )
                for pending in batch:
                    try:
                        await self._commit([pending])
                    except Exception as alone:
                        _settle(pending[1], alone)

    async def _checked(self, batch: list[_Pending]) -> list[_Pending]:
        """The batch less the writes whose references cannot resolve (each answered with its
        422): checked here, in arrival order, so a write that needs the check keeps its turn."""
        kept = []
        for pending in batch:
            checked = _reference_write(pending[0])
            if checked is not None:
                try:
                    await self.policy.check_references(None, checked)
                except Exception as refused:
                    _settle(pending[1], refused)
                    continue
            kept.append(pending)
        return kept

    async def _commit(self, batch: list[_Pending]) -> None:
        writes = [write for write, _ in batch]
        store = await self._store()
        try:
            rows, outcomes = await apply_writes(store, self.policy, writes, self.notices())
        except BaseException:
            # Whatever broke (the server, the connection), the next batch starts on a new one.
            await self._disconnect(store)
            raise
        self.batches += 1
        if rows.committed:
            for hook in self.hooks:
                try:
                    await hook(rows.committed)
                except Exception:  # committed is committed: the writers get their answers
                    log.exception("a commit hook failed after a group commit")
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)

    async def _store(self) -> Store:
        """A store on this writer's own connection, made again after a failure."""
        if self._held is None:
            connection = await self.engine.connect()
            connection = await connection.execution_options(**{WRITE_OPTION: True})
            dialect = connection.dialect
            store: Store
            if dialect.name == "sqlite":
                pooled = await connection.get_raw_connection()
                store = SqliteStore(cast(OneTripConnection, pooled.dbapi_connection), dialect)
            elif dialect.name == "postgresql":
                pooled = await connection.get_raw_connection()
                store = PostgresStore(pooled.driver_connection, dialect)
                await store.prepare()
            else:
                store = CoreStore(connection, owns_transaction=True)
            self._held = (connection, store)
        return self._held[1]

    async def _disconnect(self, store: Store) -> None:
        if self._held is None:
            return
        connection, self._held = self._held[0], None
        with contextlib.suppress(Exception):
            await store.abort()
        with contextlib.suppress(Exception):
            await connection.invalidate()  # its state is unknown: never back to the pool
        with contextlib.suppress(Exception):
            await connection.close()


def _reference_write(write: EntryWrite) -> ReferenceWrite | None:
    """What the references check needs of a write: a value holding references, or a deletion
    (others' references may need the key); None for the rest, which it spares."""
    value = write.draft.value if write.draft is not None else write.value
    deleting = write.draft is None and write.patch is None
    if not (deleting or references.mentions(value)):
        return None
    return ReferenceWrite(
        tenant_id=write.principal.tenant_id,
        namespace_id=write.namespace_id,
        principal=write.principal,
        values={} if deleting else {write.key: value},
        deleted=frozenset({write.key}) if deleting else frozenset(),
    )


async def protected_write(
    session: AsyncSession, policy: WritePolicy, write: EntryWrite
) -> EntryWritten:
    """``write`` through ``commit_changes`` in ``session``, under the same rules as in a batch;
    raises ``Proposed`` when it went into a change request."""
    namespace = await lock_namespace(
        session, tenant_id=write.principal.tenant_id, namespace_id=write.namespace_id
    )
    current = (await current_entries(session, namespace, [write.key])).get(write.key)
    draft = _draft(write, namespace, current, policy)
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        actor=write.principal.actor,
        upserts=[draft] if draft is not None else [],
        deletes=[] if draft is not None else [write.key],
        message=write.message,
        locked=namespace,
        current={write.key: current} if current is not None else {},
        principal=write.principal,
    )
    if outcome.proposal is not None:
        raise Proposed(outcome.proposal)
    if draft is None:
        return EntryWritten(None, current is not None, outcome.revision)
    return EntryWritten(
        outcome.written(write.key) or current, current is not None, outcome.revision
    )


def _settle(future: asyncio.Future[EntryWritten], outcome: EntryWritten | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
