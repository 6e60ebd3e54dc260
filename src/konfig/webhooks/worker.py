"""The webhooks worker: one per replica, started with the app, coordinated through the database.

It does three things in a loop, woken at once when this process commits an event (the commit
hooks) and every ``KONFIG_WEBHOOK_POLL_SECONDS`` otherwise (events other replicas committed,
retries falling due, deliveries left behind by a replica that died):

1. fan out: take the oldest outbox events (``SKIP LOCKED``: replicas take different ones), write
   the deliveries they owe and delete them, in one transaction; a delivery nothing is waiting
   before (no older pending delivery of its endpoint and namespace but those this process is
   sending) is written already leased and sent from memory: no claim, no lease of its own;
2. send: lease due deliveries (``SKIP LOCKED``, then a lease in the row, so no two replicas send
   the same attempt, and a lease left by a killed replica runs out), send each endpoint's and
   namespace's in a line of their own (a slow receiver holds only its own slot), and record the
   attempts, those finished together in one transaction;
3. keep house: the queue's depth and age for ``/metrics``, and pruning old attempts.

Delivery is at least once: a replica killed after sending and before recording sends again
when the lease runs out, with the same ``webhook-id``, by which receivers de-duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.audit.service import event_row as audit_row
from konfig.audit.service import insert_row as insert_audit
from konfig.backups.status import BackupEvent
from konfig.db import outbox
from konfig.db.base import utcnow
from konfig.db.outage import OutageLog, unreachable
from konfig.db.outbox import EventsQueued
from konfig.db.session import across_tenants, open_session
from konfig.metrics import Metrics
from konfig.security.crypto import DecryptionError, Keyring
from konfig.settings import Settings
from konfig.tenants.models import Tenant
from konfig.webhooks import fanout, repository, signing
from konfig.webhooks.models import WebhookDelivery, WebhookEndpoint
from konfig.webhooks.secret_store import valid_secrets
from konfig.webhooks.sender import Answer, Sender
from konfig.webhooks.targets import Policy, shown_url

log = logging.getLogger("konfig.webhooks")

ACTOR = "konfig:webhooks"
_EVENTS_PER_FAN_OUT = 100
_STATS_EVERY = 1.0
_PRUNE_EVERY = 300.0
_YIELD_TO_WRITES = 0.2
_LOAD_WINDOW = 0.5  # seconds over which the write path's load is measured
_SATURATED = 0.5  # the share of that time the write path was busy: writes go first
_STOP_GRACE = 2.0  # seconds attempts under way get at shutdown (then their leases run out)
_EVENTS_UNDER_WRITES = 20
_CHAINS_UNDER_WRITES = 2
_CHAIN_UNDER_WRITES = 10
_SCAN = 500  # pending deliveries looked at per claim, oldest first
_CHAIN = 50  # deliveries one slot sends in a row to one endpoint about one namespace


@dataclass(eq=False, slots=True)
class _Line:
    """The deliveries to one endpoint about one namespace this process is sending, in order,
    one at a time; the fan-out adds fresh ones at its end while it is open. It closes when it
    runs dry, or at a failure (``failed``), whose followers then wait for its retry."""

    endpoint: WebhookEndpoint
    queue: deque[WebhookDelivery]
    ids: set[uuid.UUID] = field(default_factory=set)  # every delivery it was given
    closed: bool = False
    failed: bool = False


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    answer: Answer
    rest: list[WebhookDelivery]  # the chain behind a failure, released to wait its turn


def _attempt_row(outcome: _Outcome, now: datetime) -> dict[str, Any]:
    answer = outcome.answer
    return {
        "id": uuid.uuid4(),
        "tenant_id": outcome.delivery.tenant_id,
        "delivery_id": outcome.delivery.id,
        "attempted_at": now,
        "status_code": answer.status_code,
        "duration_ms": answer.duration_ms,
        "response": answer.response,
        "error": answer.error,
        "outcome": "succeeded" if answer.succeeded else "failed",
    }


def _forget(
    sets: tuple[set[uuid.UUID], ...], delivery_id: uuid.UUID, _: asyncio.Future[None]
) -> None:
    for ids in sets:
        ids.discard(delivery_id)


def _observed(future: asyncio.Future[None]) -> bool:
    """Whether the recording of an attempt is over; logged when it failed."""
    if not future.done():
        return False
    if not future.cancelled() and future.exception() is not None:
        # Its lease runs out and it is sent again: at least once.
        log.error("could not record a webhook attempt", exc_info=future.exception())
    return True


def _chains(
    rows: Sequence[repository.Pending],
    *,
    now: datetime,
    slots: int,
    waiting: dict[uuid.UUID, datetime],
    longest: int = _CHAIN,
) -> dict[tuple[uuid.UUID, str], list[repository.Pending]]:
    """From the oldest pending deliveries, what may be sent now, by key (endpoint, namespace):
    each key's deliveries from its oldest, up to the first one not due, leased elsewhere, or
    behind an event of its tenant not fanned out yet. A delivery of no namespace is a key of
    its own."""
    chains: dict[tuple[uuid.UUID, str], list[repository.Pending]] = {}
    blocked: set[tuple[uuid.UUID, str]] = set()
    for delivery in rows:
        key = (delivery.endpoint_id, delivery.order_key or f"#{delivery.id}")
        if key in blocked:
            continue
        held = delivery.locked_until is not None and delivery.locked_until >= now
        behind = waiting.get(delivery.tenant_id)
        if held or delivery.next_attempt_at > now or (behind and behind < delivery.created_at):
            blocked.add(key)
            continue
        chain = chains.get(key)
        if chain is None and len(chains) < slots:
            chains[key] = [delivery]
        elif chain is not None and len(chain) < longest:
            chain.append(delivery)
        else:
            blocked.add(key)
    return chains


class Recorder:
    """The group commit of attempts' outcomes: whatever has queued while the last transaction
    ran is written in the next one."""

    def __init__(self, write: Callable[[Sequence[_Outcome]], Awaitable[None]]) -> None:
        self.write = write
        self._queue: list[tuple[_Outcome, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, outcome: _Outcome) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:500], self._queue[500:]
            try:
                await self.write([outcome for outcome, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)


class WebhookWorker:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        metrics: Metrics,
        outages: OutageLog | None = None,
    ) -> None:
        self.settings = settings
        self.outages = outages or OutageLog()
        self.sessionmaker = sessionmaker
        # SQLite: one server process, so one worker; its claims need no lock held while they
        # read (see ``fan_out``).
        bind = sessionmaker.kw.get("bind")
        self.one_process = bind is not None and bind.dialect.name == "sqlite"
        self.keyring = keyring
        self.metrics = metrics
        self.policy = Policy.of(settings.webhook_allow_http, settings.webhook_allowed_networks)
        self.sender = Sender(
            self.policy, settings.webhook_timeout_seconds, settings.webhook_concurrency
        )
        # Seconds this process's write path has been busy, all told: while it is busy most of
        # the time (saturated), writes go first (``_run``).
        self.write_load: Callable[[], float] = lambda: 0.0
        # Whether writes are queued or committing in this process right now.
        self.writes_waiting: Callable[[], bool] = lambda: False
        self._load_sample = (time.monotonic(), 0.0)
        self._saturated = False
        # Longer than an attempt can take: a lease that runs out means its holder is gone.
        self.lease = timedelta(seconds=settings.webhook_timeout_seconds * 2 + 5)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # The lines being sent, by (endpoint, order key): the fan-out adds to them.
        self._lines: dict[repository.Key, _Line] = {}
        # Deliveries sent and answered 2xx whose outcome is not written yet: still pending in
        # the database, they hold back nothing that follows them.
        self._unrecorded: set[uuid.UUID] = set()
        # Whether pending deliveries may wait that no line of this process holds: a claim
        # (``dispatch``) is due at once rather than at the next poll.
        self._backlog = True
        self._dispatched_at = 0.0
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._stats_at = 0.0
        self.recorder = Recorder(self.record)
        self._pruned_at = time.monotonic()

    # Hooks.

    def wake(self) -> None:
        self._wake.set()

    async def on_committed(self, committed: Sequence[object]) -> None:
        self.wake()

    async def on_changed(self, changes: Sequence[object]) -> None:
        if any(isinstance(change, EventsQueued) for change in changes):
            self.wake()

    def on_backup(self, event: BackupEvent) -> None:
        """A failed backup becomes a ``backup.failed`` event (in a transaction of its own:
        the failure committed nothing to go with)."""
        if event.outcome != "failure":
            return
        task = asyncio.get_running_loop().create_task(self._backup_failed(event))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _backup_failed(self, event: BackupEvent) -> None:
        try:
            async with self._transaction() as session:
                tenant_id = (
                    await session.execute(select(Tenant.id).where(Tenant.name == event.tenant))
                ).scalar_one_or_none()
                if tenant_id is None:
                    return
                row = outbox.event_row(
                    tenant_id=tenant_id,
                    type="backup.failed",
                    data={"trigger": event.trigger, "error": event.error, "tenant": event.tenant},
                )
                await session.execute(outbox.TABLE.insert(), row)
        except Exception:
            log.exception("could not record a backup.failed event")
            return
        self.wake()

    # Life.

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="konfig-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # stopping goes on: what is left is retried after its lease
                log.exception("the webhooks worker ended with an error")
        pending = self._inflight | self._side_tasks
        if self.recorder.task is not None:
            pending.add(self.recorder.task)
        if pending:
            # Attempts under way get a moment; a lease left behind runs out and is retried.
            _, late = await asyncio.wait(pending, timeout=_STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.sender.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self._writes_saturated():
                    # Writes first: under a burst of writes, a little at a time, and the queue
                    # grows for a moment rather than the writes slowing down.
                    # Nothing is sent from the fan-out (its lines would take every fresh
                    # delivery): only the claim's few short chains.
                    await asyncio.sleep(_YIELD_TO_WRITES)
                    more = await self.fan_out(_EVENTS_UNDER_WRITES) >= _EVENTS_UNDER_WRITES
                    self._backlog = True
                    slots = _CHAINS_UNDER_WRITES - len(self._inflight)
                    if slots > 0 and self._claim_due():
                        await self.dispatch(slots, _CHAIN_UNDER_WRITES)
                else:
                    # One batch a round: a backlog of events never holds the loop (nor, on
                    # SQLite, the write lock) for long.
                    free = self.settings.webhook_concurrency - len(self._inflight)
                    taken = await self.fan_out(_EVENTS_PER_FAN_OUT, send=max(free, 0))
                    more = taken >= _EVENTS_PER_FAN_OUT
                    if self._claim_due():
                        await self.dispatch()
                if more:
                    self.wake()
                await self._keep_house()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # try again next round
                kind = unreachable(exc)
                if kind is not None:  # the database out of reach: once a minute, no traceback
                    self.outages.report(kind)
                else:
                    log.warning(
                        "the webhooks worker failed a round: %s", type(exc).__name__, exc_info=True
                    )
            # asyncio.timeout, not wait_for: on Python 3.11 a wake arriving as the task is
            # cancelled made wait_for return and drop the cancellation, and stop() waited on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.webhook_poll_seconds):
                    await self._wake.wait()

    def _claim_due(self) -> bool:
        """Whether to look for pending deliveries now: some may wait that no line of this
        process holds (a fan-out left them, a line failed, a claim found more), or a poll's
        time has passed (retries falling due, other replicas' deliveries, leases run out)."""
        return (
            self._backlog
            or time.monotonic() - self._dispatched_at >= self.settings.webhook_poll_seconds
        )

    def _writes_saturated(self) -> bool:
        """Whether writes are waiting now, and the write path was busy for half the last
        stretch (about half a second) or more.

        Writes coming as fast as they can (a burst, a bulk job) would lose a share of the
        process to every attempt: the worker then does a little at a time and the queue waits.
        Writes at any lesser rate leave the process idle part of the time, and the worker uses
        it at full speed, so the queue keeps up with them."""
        clock, busy = time.monotonic(), self.write_load()
        since, busy_then = self._load_sample
        if clock - since >= _LOAD_WINDOW:
            self._saturated = (busy - busy_then) / (clock - since) >= _SATURATED
            self._load_sample = (clock, busy)
        return self._saturated and self.writes_waiting()

    @asynccontextmanager
    async def _transaction(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        session = await open_session(self.sessionmaker, write=write)
        try:
            async with across_tenants(
                session, "webhooks: the outbox and deliveries of every tenant"
            ):
                yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            await session.close()

    # 1. Fan out.

    async def fan_out(self, limit: int | None = None, *, send: int | None = None) -> int:
        """Turn waiting outbox events into deliveries (at most ``limit``, else all); answer how
        many events were taken. ``send``: how many new lines the fresh deliveries may start
        (beside those added to this process's open lines); None, and none is sent from here."""
        taken = 0
        batch = min(limit or _EVENTS_PER_FAN_OUT, _EVENTS_PER_FAN_OUT)
        while True:
            # SQLite: read first, then write in a transaction of two statements, which holds
            # the database's one write lock (the writes' too) only that long. This process's
            # worker is the only one there, so nothing moves in between.
            async with self._transaction(write=not self.one_process) as session:
                events = await repository.claim_events(session, limit=batch)
                if not events:
                    return taken
                rows, endpoints = await self._deliveries_of(session, events)
                lines = {}
                if send is not None and rows:
                    lines = await self._sendable(session, rows, events, send)
                if not self.one_process:
                    await self._fanned(session, rows, events)
            if self.one_process:
                async with self._transaction() as session:
                    await self._fanned(session, rows, events)
            leased = sum(len(taken) for taken, _ in lines.values())
            if leased < len(rows):
                self._backlog = True
            if lines:
                await self._send_fresh(lines, endpoints)
            taken += len(events)
            if len(events) < batch or (limit is not None and taken >= limit):
                return taken

    async def _sendable(
        self,
        session: AsyncSession,
        rows: list[dict[str, Any]],
        events: Sequence[outbox.OutboxEvent],
        slots: int,
    ) -> dict[repository.Key, tuple[list[dict[str, Any]], _Line | None]]:
        """Of fresh delivery rows, those this process may send at once, by key, leased here
        (the rows are written so), with the key's open line they follow (None: a new one): a
        key's rows when no pending delivery of that key is older but those an open line of
        this process holds, and (on a database several replicas share) no event of the tenant
        older than this batch waits to be fanned out elsewhere; at most ``slots`` new lines."""
        by_key: dict[repository.Key, list[dict[str, Any]]] = {}
        for row in rows:
            key = (row["endpoint_id"], row["order_key"] or f"#{row['id']}")
            by_key.setdefault(key, []).append(row)
        if not self.one_process:
            # Before the deliveries (read committed): an older event fanned out in between
            # shows as its deliveries.
            since = await repository.unfanned_since(session, besides=[e.id for e in events])
            newest = max(e.created_at for e in events)
            late = {tenant for tenant, at in since.items() if at <= newest}
            by_key = {k: v for k, v in by_key.items() if v[0]["tenant_id"] not in late}
        named = [key for key in by_key if not key[1].startswith("#")]
        pending = await repository.pending_of(session, keys=named) if named else {}
        until = utcnow() + self.lease
        chosen: dict[repository.Key, tuple[list[dict[str, Any]], _Line | None]] = {}
        for key, key_rows in by_key.items():
            line = self._lines.get(key)
            if line is not None and line.closed:
                line = None
            waiting = pending.get(key, set()) - self._unrecorded
            if waiting - (line.ids if line is not None else set()):
                continue  # older deliveries wait: they go first, through a claim
            if line is None:
                if slots <= 0:
                    continue
                slots -= 1
            taken = key_rows[:_CHAIN]
            for row in taken:
                row["locked_until"] = until
            chosen[key] = (taken, line)
        return chosen

    async def _send_fresh(
        self,
        lines: dict[repository.Key, tuple[list[dict[str, Any]], _Line | None]],
        endpoints: dict[uuid.UUID, WebhookEndpoint],
    ) -> None:
        """Send the fresh deliveries ``_sendable`` chose and leased: at the end of the open
        line they follow, or in a new one. That line failed since: they are released, to wait
        for its retry; it ran dry: they start the next one."""
        released: list[uuid.UUID] = []
        for key, (rows, line) in lines.items():
            deliveries = [WebhookDelivery(**row) for row in rows]
            if line is not None and not line.closed:
                line.endpoint = endpoints[key[0]]  # as it is now: a new URL, a rotated secret
                line.queue.extend(deliveries)
                line.ids.update(d.id for d in deliveries)
            elif line is not None and line.failed:
                released += [d.id for d in deliveries]
            else:
                self._start_line(key, endpoints[key[0]], deliveries)
        if released:
            async with self._transaction() as session:
                await repository.lease(session, ids=released, until=None)
            self._backlog = True

    def _start_line(
        self, key: repository.Key, endpoint: WebhookEndpoint, deliveries: list[WebhookDelivery]
    ) -> None:
        line = _Line(endpoint, deque(deliveries), {d.id for d in deliveries})
        self._lines[key] = line
        task = asyncio.create_task(self._send_line(key, line))
        self._inflight.add(task)
        task.add_done_callback(self._finished)

    async def _fanned(
        self,
        session: AsyncSession,
        rows: list[dict[str, Any]],
        events: Sequence[outbox.OutboxEvent],
    ) -> None:
        await repository.add_deliveries(session, rows)
        await repository.delete_events(session, ids=[e.id for e in events])

    async def _deliveries_of(
        self, session: AsyncSession, events: Sequence[outbox.OutboxEvent]
    ) -> tuple[list[dict[str, Any]], dict[uuid.UUID, WebhookEndpoint]]:
        """The delivery rows ``events`` owe, and the endpoints they go to."""
        tenants = sorted({event.tenant_id for event in events})
        endpoints = await repository.subscribed(session, tenant_ids=tenants)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        # Each namespace's inheritors once a batch: every event in it sees the same namespaces.
        found: dict[tuple[uuid.UUID, str, uuid.UUID | None], list[repository.NamespaceNode]] = {}
        for event in events:
            own = [e for e in endpoints if e.tenant_id == event.tenant_id]
            if not own:
                continue
            inheritors: list[repository.NamespaceNode] = []
            if (
                event.type == "config.changed"
                and event.namespace is not None
                and any("config.changed" in e.events for e in own)
            ):
                source = (event.tenant_id, event.namespace, event.namespace_id)
                if source not in found:
                    found[source] = await repository.inheritors_of(
                        session,
                        tenant_id=event.tenant_id,
                        source_name=event.namespace,
                        source_id=event.namespace_id,
                    )
                inheritors = found[source]
            rows.extend(fanout.deliveries(event, own, inheritors, now))
        return rows, {e.id: e for e in endpoints}

    # 2. Send.

    async def dispatch(self, limit: int | None = None, longest: int = _CHAIN) -> int:
        """Lease what may be sent now, up to the free slots, and send it; answer how many.

        Deliveries to one endpoint about one namespace go in order, one at a time: a slot takes
        a chain of them (the oldest pending first), sends them one after another, and stops
        at the first that fails (the rest wait behind its retry). One lease covers the chain.
        """
        free = self.settings.webhook_concurrency - len(self._inflight)
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return 0
        self._backlog = False
        self._dispatched_at = time.monotonic()
        now = utcnow()
        async with self._transaction(write=not self.one_process) as session:
            rows = await repository.pending_in_order(session, limit=_SCAN)
            waiting = await repository.unfanned_since(session) if rows else {}
            chains = _chains(rows, now=now, slots=free, waiting=waiting, longest=longest)
            for key in [key for key in chains if key in self._lines]:  # under way here
                del chains[key]
            self._backlog = self._left_behind(rows, chains, now=now, free=free, longest=longest)
            # SKIP LOCKED hid the rows another replica's claim holds: the head of a key may be
            # among them. SQLite has one server, one claim at a time: nothing is hidden.
            ordered = [key for key in chains if not key[1].startswith("#")]
            if self.one_process:
                ordered = []
            oldest = await repository.oldest_pending(session, keys=ordered)
            for key in ordered:  # one held by another replica's claim came first: not ours yet
                if oldest.get(key, now) < chains[key][0].created_at:
                    del chains[key]
            if not chains:
                return 0
            ids = [d.id for chain in chains.values() for d in chain]
            if not self.one_process:
                await repository.lease(session, ids=ids, until=now + self.lease)
            loaded = await repository.deliveries_by_id(session, ids=ids)
            endpoints = await repository.endpoints_by_id(
                session, ids=list({key[0] for key in chains})
            )
        if self.one_process:  # one statement holds the write lock (see fan_out)
            async with self._transaction() as session:
                await repository.lease(session, ids=ids, until=now + self.lease)
        for key, chain in chains.items():
            self._start_line(key, endpoints[key[0]], [loaded[d.id] for d in chain])
        return len(ids)

    def _left_behind(
        self,
        rows: Sequence[repository.Pending],
        chains: dict[repository.Key, list[repository.Pending]],
        *,
        now: datetime,
        free: int,
        longest: int,
    ) -> bool:
        """Whether a claim left due deliveries that may go as soon as a slot frees or a line
        of this process ends (those behind a retry or another replica's lease wait a poll)."""
        if len(chains) >= free or any(len(chain) >= longest for chain in chains.values()):
            return True
        taken = {d.id for chain in chains.values() for d in chain}
        taken.update(i for line in self._lines.values() for i in line.ids)
        return any(
            (d.endpoint_id, d.order_key or f"#{d.id}") in self._lines
            for d in rows
            if d.id not in taken and d.next_attempt_at <= now
        )

    async def settle(self) -> None:
        """Wait for the attempts under way to be sent and recorded."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.wake()  # a slot is free, and the next delivery of its namespace may be due

    async def _send_line(self, key: repository.Key, line: _Line) -> None:
        """Send ``line``'s deliveries one after another until it runs dry or one fails."""
        recorded: list[asyncio.Future[None]] = []
        endpoint: WebhookEndpoint | None = None
        secrets: list[str] = []
        while line.queue:
            delivery = line.queue.popleft()
            if line.endpoint is not endpoint:
                endpoint = line.endpoint
                try:
                    secrets = valid_secrets(self.keyring, endpoint)
                except DecryptionError:
                    secrets = []
            if secrets:
                stamp = int(time.time())
                headers = signing.headers(secrets, delivery.id, stamp, delivery.payload)
                answer = await self.sender.send(endpoint.url, headers, delivery.payload)
            else:
                answer = Answer(None, "", "the signing secret cannot be decrypted", 0)
            rest: list[WebhookDelivery] = []
            if not answer.succeeded:  # the rest wait for its retry; nothing more joins
                rest, line.failed, line.closed = list(line.queue), True, True
                line.queue.clear()
            future = self.recorder.add(_Outcome(delivery, endpoint, answer, rest))
            if answer.succeeded:  # recorded, it is pending no more: forgotten
                self._unrecorded.add(delivery.id)
                future.add_done_callback(
                    functools.partial(_forget, (line.ids, self._unrecorded), delivery.id)
                )
            recorded = [f for f in recorded if not _observed(f)]
            recorded.append(future)
            if line.failed:
                break
        line.closed = True
        if self._lines.get(key) is line:
            del self._lines[key]
        if line.failed:
            self._backlog = True
        # Recorded before the slot frees: the next claim sees where each line stopped.
        for future in recorded:
            with contextlib.suppress(Exception):
                await future
            _observed(future)

    async def record(self, outcomes: Sequence[_Outcome]) -> None:
        """Record attempts in one transaction: successes in a few statements whatever their
        number; failures each by the retry schedule."""
        now = utcnow()
        attempts = [_attempt_row(o, now) for o in outcomes]
        succeeded = [o for o in outcomes if o.answer.succeeded]
        async with self._transaction() as session:
            await repository.add_attempts(session, attempts)
            await repository.succeeded(
                session,
                [
                    {"delivery_id": o.delivery.id, "attempts": o.delivery.attempts + 1, "at": now}
                    for o in succeeded
                ],
            )
            failing = {o.endpoint.id for o in succeeded if o.endpoint.failing_since is not None}
            if failing:
                await repository.recovered(session, endpoint_ids=sorted(failing))
            for outcome in outcomes:
                if not outcome.answer.succeeded:
                    await self._failed(session, outcome, now)
        if succeeded:
            self.metrics.webhook_deliveries.labels("succeeded").inc(len(succeeded))

    async def _failed(self, session: AsyncSession, outcome: _Outcome, now: datetime) -> None:
        delivery, endpoint, answer = outcome.delivery, outcome.endpoint, outcome.answer
        if outcome.rest:  # the chain behind it waits for its retry, unleased
            await repository.lease(session, ids=[d.id for d in outcome.rest], until=None)
        done = {"attempts": delivery.attempts + 1, "last_attempt_at": now, "locked_until": None}
        if answer.status_code == 410:
            await repository.update_delivery(session, delivery.id, status="failed", **done)
            await self._disable(session, endpoint, "the receiver answered 410 Gone")
            self.metrics.webhook_deliveries.labels("failed").inc()
            return
        delays = self.settings.webhook_retry_delays
        if delivery.retries < len(delays):
            delay = delays[delivery.retries] * (1 + random.random() * 0.1)  # noqa: S311
            if answer.retry_after is not None:
                delay = min(answer.retry_after, 86_400.0)
            await repository.update_delivery(
                session,
                delivery.id,
                status="pending",
                retries=delivery.retries + 1,
                next_attempt_at=now + timedelta(seconds=delay),
                **done,
            )
            self.metrics.webhook_deliveries.labels("retrying").inc()
        else:
            await repository.update_delivery(session, delivery.id, status="failed", **done)
            self.metrics.webhook_deliveries.labels("failed").inc()
        failing_since = endpoint.failing_since or now
        if endpoint.failing_since is None:
            endpoint.failing_since = now  # this chain's next failure sees it
            await repository.update_endpoint(session, endpoint.id, failing_since=now)
        limit = timedelta(seconds=self.settings.webhook_disable_after_seconds)
        if now - failing_since >= limit and endpoint.enabled:
            endpoint.enabled = False
            days = self.settings.webhook_disable_after_seconds / 86400
            await self._disable(session, endpoint, f"every attempt failed for {days:g} days")

    async def _disable(self, session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
        await repository.update_endpoint(
            session, endpoint.id, enabled=False, disabled_reason=reason, updated_at=utcnow()
        )
        await insert_audit(
            session,
            audit_row(
                action="webhook.disable",
                target_type="webhook",
                target=shown_url(endpoint.url),
                tenant_id=endpoint.tenant_id,
                actor=ACTOR,
                summary={"id": str(endpoint.id), "reason": reason},
            ),
        )
        log.warning("webhook %s disabled: %s", endpoint.id, reason)

    # 3. Keep house.

    async def _keep_house(self) -> None:
        clock = time.monotonic()
        if clock - self._stats_at >= _STATS_EVERY:
            self._stats_at = clock
            await self.refresh_stats()
        if clock - self._pruned_at >= _PRUNE_EVERY:
            self._pruned_at = clock
            await self.prune()

    async def refresh_stats(self) -> None:
        async with self._transaction(write=False) as session:
            depth, oldest = await repository.queue_stats(session)
        self.metrics.webhook_queue_depth.set(depth)
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        self.metrics.webhook_oldest_pending_age.set(age)

    async def prune(self, now: datetime | None = None) -> None:
        before = (now or utcnow()) - timedelta(days=self.settings.webhook_retention_days)
        async with self._transaction() as session:
            await repository.prune(session, before=before)
