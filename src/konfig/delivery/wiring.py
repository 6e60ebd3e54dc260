"""Putting the read path into the app: caches, hooks, notifications, background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.analytics import service as analytics
from konfig.analytics.prometheus import AnalyticsMetrics
from konfig.analytics.recorder import Recorder
from konfig.audit.reveals import RevealCounter
from konfig.auth.logins import LoginCache
from konfig.db.base import utcnow
from konfig.db.engine import one_snapshot
from konfig.db.session import WRITE_OPTION, across_tenants, bind_tenant
from konfig.delivery import repository, resolve
from konfig.delivery.cache import ResolvedCache
from konfig.delivery.handler import ReadPath
from konfig.delivery.notifier import (
    Event,
    Notifier,
    PostgresTransport,
    RedisTransport,
    encode,
)
from konfig.delivery.ofrep import Ofrep
from konfig.delivery.references import ReferenceChecker
from konfig.delivery.resolve import Resolution
from konfig.events import (
    LoginEnded,
    NamespaceChanged,
    TenantChanged,
    TokenChanged,
    UserChanged,
)
from konfig.revisions.writer import Committed
from konfig.security.crypto import Keyring
from konfig.settings import Settings
from konfig.state import app_state
from konfig.tokens.cache import TokenCache

log = logging.getLogger("konfig.delivery")


class Delivery:
    """Everything the read path keeps per process, and its lifecycle."""

    def __init__(self, app: FastAPI, settings: Settings, keyring: Keyring) -> None:
        self.app = app
        self.state = app_state(app)
        self.settings = settings
        self.keyring = keyring
        self.heartbeat_seconds = settings.sse_heartbeat_seconds
        self.tokens = TokenCache(max_age=settings.cache_max_age_seconds)
        self.logins = LoginCache(max_age=settings.cache_max_age_seconds)
        self.reveals = RevealCounter()  # secrets shown on the read path, audited in aggregate
        self.cache = ResolvedCache(
            self._load_many,
            max_entries=settings.resolved_cache_entries,
            max_age=settings.cache_max_age_seconds,
        )
        self.notifier = Notifier(self.apply)
        # Also told of every announcement, this process's and other replicas' (the UI's feed).
        self.listeners: list[Callable[[Sequence[Event]], None]] = []
        # Who reads what (konfig.analytics), gathered in memory and written in aggregate.
        self.analytics = Recorder(
            max_instances=settings.analytics_max_instances, enabled=settings.analytics_enabled
        )
        self.read_path = ReadPath(self)
        AnalyticsMetrics(
            self.analytics, limit=settings.analytics_metric_namespaces, waiting=self.read_path
        ).register(self.state.metrics.registry)
        # OFREP evaluations, counted in the same record and written in the same flush.
        self.analytics.evaluations.register(self.state.metrics.registry)
        self.ofrep = Ofrep(self, self.read_path)
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.references = ReferenceChecker(keyring)  # every write path asks it (WritePolicy)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError("the app's lifespan has not started")
        return self._sessionmaker

    # Wiring -----------------------------------------------------------------------------------

    def install(self) -> None:
        """Into the app's state, and onto its commit and change hooks."""
        state = self.state
        state.delivery = self
        state.token_cache = self.tokens
        state.login_cache = self.logins
        state.commit_hooks.append(self.on_committed)
        state.change_hooks.append(self.on_changed)
        state.write_policy.reference_checks.append(self.references)

    async def start(self) -> None:
        self._sessionmaker = self.references.sessionmaker = self.state.sessionmaker
        transport = self._transport()
        if transport is not None:
            # Nothing is cached until the listener listens: a replica must never trust a cache
            # it cannot hear invalidations for.
            self._down()
            self.notifier.transport = transport
            if isinstance(transport, PostgresTransport):
                self.state.notices = self.notices  # announced inside each commit
            await transport.start()
        self._watch_shutdown()
        if isinstance(transport, RedisTransport):
            self._tasks.append(asyncio.create_task(self._poll_revisions_forever()))
        self._tasks.append(asyncio.create_task(self._flush_usage_forever()))
        self._tasks.append(asyncio.create_task(self._heartbeats_forever()))
        # Flushed even with analytics off: flag evaluation counts are part of the record.
        self._tasks.append(asyncio.create_task(self._flush_analytics_forever()))
        if self.analytics.enabled:
            self._tasks.append(asyncio.create_task(self._tick_analytics_forever()))

    async def stop(self) -> None:
        self.cache.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.state.notices = None
        if self.notifier.transport is not None:
            await self.notifier.transport.stop()
            self.notifier.transport = None
        await self.tokens.flush_usage(self.sessionmaker)
        await self.reveals.flush(self.sessionmaker)
        await analytics.flush(self.analytics, self.sessionmaker, self.settings)

    def _transport(self) -> PostgresTransport | RedisTransport | None:
        settings = self.settings
        callbacks: dict[str, Any] = {
            "on_message": self.notifier.received,
            "on_up": self._up,
            "on_down": self._down,
            "check_seconds": settings.listener_check_seconds,
        }
        if settings.redis_url:
            return RedisTransport(
                url=settings.redis_url, channel=settings.notify_channel, **callbacks
            )
        url = settings.resolved_database_url
        backend = make_url(url).get_backend_name()
        if backend == "postgresql":
            return PostgresTransport(url=url, channel=settings.notify_channel, **callbacks)
        if backend != "sqlite":
            log.warning(
                "no change notifications between replicas on %s: run one replica or set "
                "KONFIG_REDIS_URL",
                backend,
            )
        return None

    def _up(self) -> None:
        self.tokens.clear()
        self.tokens.enabled = True
        self.logins.clear()
        self.logins.enabled = True
        self.cache.enable()

    def _down(self) -> None:
        self.tokens.enabled = False
        self.tokens.clear()
        self.logins.enabled = False
        self.logins.clear()
        self.cache.disable()

    # Changes ----------------------------------------------------------------------------------

    def apply(self, events: Iterable[Event]) -> None:
        """Act on announced changes (synchronously: nothing else runs before they take effect)."""
        announced = list(events)
        for kind, tenant_id, object_id, name in announced:
            if kind == "ns":
                self.cache.invalidate(tenant_id, object_id, name)
            elif kind == "token":
                self.tokens.forget_token(object_id)
            elif kind == "user":
                self.tokens.forget_user(object_id)
                self.logins.forget_user(object_id)
            elif kind == "login":
                self.logins.forget_login(object_id)
            elif kind == "tenant":
                self.tokens.forget_tenant(tenant_id)
                self.logins.forget_tenant(tenant_id)
                self.cache.forget_tenant(tenant_id)
        for listener in self.listeners:
            listener(announced)

    async def _announce(self, events: Sequence[Event]) -> None:
        self.apply(events)  # here first: this replica answers the writer with the new state
        if self.state.notices is None:  # else the committing transaction told the others
            await self.notifier.publish(events)

    def notices(
        self, committed: Sequence[Committed] | None, changes: Sequence[object] | None
    ) -> list[tuple[str, str]]:
        """What a transaction about to commit tells the other replicas through PostgreSQL:
        ``(channel, payload)`` pairs for NOTIFY (``AppState.notices``)."""
        events = _committed_events(committed or ()) + _change_events(changes or ())
        channel = self.settings.notify_channel
        return [(channel, payload) for payload in encode(self.notifier.origin, events)]

    async def on_committed(self, committed: Sequence[Committed]) -> None:
        self.state.metrics.delivery.writes += len(committed)
        await self._announce(_committed_events(committed))

    async def on_changed(self, changes: Sequence[object]) -> None:
        await self._announce(_change_events(changes))

    async def _load_many(
        self, tenant_id: uuid.UUID, names: list[str]
    ) -> dict[str, Resolution | None]:
        session = self.sessionmaker()
        try:
            # One snapshot for all of the resolution's queries. Under READ COMMITTED a commit
            # between the namespaces query and the entries query got revision N's values
            # labelled revision N-1.
            options = {WRITE_OPTION: False, **one_snapshot(session.get_bind().dialect)}
            await session.connection(execution_options=options)
            await bind_tenant(session, tenant_id)
            return await resolve.load_many(
                session, keyring=self.keyring, tenant_id=tenant_id, names=names
            )
        finally:
            await session.close()

    # Background -------------------------------------------------------------------------------

    async def _heartbeats_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            self.read_path.beat()

    async def _poll_revisions_forever(self) -> None:
        """With Redis between replicas, the backstop for an announcement lost between another
        replica's commit and its publication (it was killed in between): every few seconds,
        drop what the cache read at a revision older than the database's, and the tokens
        revoked meanwhile. (On PostgreSQL the announcement is part of the commit.)"""
        while True:
            await asyncio.sleep(self.settings.revision_poll_seconds)
            # Looking back a minute covers the clocks of other replicas and long transactions;
            # what this replica already has is skipped by revision.
            since = utcnow() - timedelta(seconds=60 + self.settings.revision_poll_seconds)
            try:
                changed, revoked = await self._changed_since(since)
            except Exception:
                log.warning("could not compare the cache with the database", exc_info=True)
                continue
            missed: list[Event] = [
                ("ns", tenant_id, namespace_id, name)
                for tenant_id, namespace_id, name, revision in changed
                if self.cache.behind(tenant_id, namespace_id, revision)
            ]
            missed += [
                ("token", tenant_id, token_id, "")
                for tenant_id, token_id in revoked
                if self.tokens.knows(token_id)
            ]
            if missed:
                log.info("%d change(s) made without an announcement heard: applied", len(missed))
                self.apply(missed)

    async def _changed_since(self, since: datetime) -> tuple[list[Any], list[Any]]:
        session = self.sessionmaker()
        try:
            async with across_tenants(session, "read path: revisions of every tenant"):
                changed = await repository.changed_since(session, since)
                revoked = await repository.revoked_since(session, since)
            return changed, revoked
        finally:
            await session.close()

    async def _flush_usage_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.token_usage_flush_seconds)
            await self.tokens.flush_usage(self.sessionmaker)
            await self.reveals.flush(self.sessionmaker)

    async def _tick_analytics_forever(self) -> None:
        """The analytics' clock: answers are stamped with it, to a tenth of the flush period
        (at most a second)."""
        period = min(1.0, self.settings.analytics_flush_seconds / 10)
        while True:
            self.analytics.tick()
            await asyncio.sleep(period)

    def _cached_state(self, tenant_id: uuid.UUID, name: str) -> tuple[str, list[uuid.UUID]] | None:
        """The state the read path holds for a namespace, for the stale-instances metric."""
        resolved = self.cache.get(tenant_id, name)
        if resolved is None:
            return None
        return resolved.etag, [layer.id for layer in resolved.resolution.layers]

    async def _flush_analytics_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.analytics_flush_seconds)
            await analytics.flush(self.analytics, self.sessionmaker, self.settings)
            if self.analytics.enabled:
                await analytics.measure_stale(
                    self.analytics, self.sessionmaker, self.settings, self._cached_state
                )
            await analytics.compact_now_and_then(self.analytics, self.sessionmaker, self.settings)

    def _watch_shutdown(self) -> None:
        """End streams and long polls once the app's ``shutdown_event`` is set: on SIGTERM
        (``konfig.ops.server``), before uvicorn waits for open responses to finish, which
        streams never do on their own."""

        async def close_on_shutdown(shutdown: asyncio.Event) -> None:
            await shutdown.wait()
            self.cache.close()

        self._tasks.append(asyncio.create_task(close_on_shutdown(self.state.shutdown_event)))


def _committed_events(committed: Sequence[Committed]) -> list[Event]:
    return [("ns", c.tenant_id, c.namespace_id, c.namespace_name) for c in committed]


def _change_events(changes: Sequence[object]) -> list[Event]:
    events: list[Event] = []
    for change in changes:
        if isinstance(change, NamespaceChanged):
            events.append(("ns", change.tenant_id, change.namespace_id, change.namespace_name))
        elif isinstance(change, TokenChanged):
            events.append(("token", change.tenant_id, change.token_id, ""))
        elif isinstance(change, UserChanged):
            events.append(("user", change.tenant_id, change.user_id, ""))
        elif isinstance(change, LoginEnded):
            events.append(("login", change.tenant_id, change.session_id, ""))
        elif isinstance(change, TenantChanged):
            events.append(("tenant", change.tenant_id, change.tenant_id, ""))
    return events
