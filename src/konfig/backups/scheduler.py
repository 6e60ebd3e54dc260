"""Automatic backups: debounced after changes, and on a schedule.

After a commit, a tenant's backup waits until its changes have been quiet for
``KONFIG_BACKUP_DEBOUNCE_SECONDS`` (a burst of writes makes one backup), but never longer than
``_MAX_WAIT`` debounce periods, so a steady trickle of writes is still backed up. At shutdown
every pending backup is taken before the engine closes: no change is left unbacked.

The schedule makes sure each tenant with namespaces has a backup no older than
``KONFIG_BACKUP_INTERVAL``; it looks at the newest file, so restarts do not postpone it and
replicas sharing the backup volume do not each take one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.backups import repository
from konfig.backups.format import Trigger
from konfig.backups.service import Backups, take
from konfig.db.base import utcnow
from konfig.db.session import across_tenants, bind_tenant, open_session
from konfig.revisions.writer import Committed

log = logging.getLogger("konfig.backups")

_MAX_WAIT = 5  # debounce periods a backup may be put off by continuing changes
_MAX_TICK = 60.0  # how often, at most, the schedule looks for tenants that are due
_SHUTDOWN_SECONDS = 60.0  # the most the shutdown flush may take


class BackupScheduler:
    def __init__(
        self,
        *,
        backups: Backups,
        sessionmaker: async_sessionmaker[AsyncSession],
        debounce: float,
        interval: float,
    ) -> None:
        self.backups = backups
        self.sessionmaker = sessionmaker
        self.debounce = debounce
        self.interval = interval
        self._first_change: dict[uuid.UUID, float] = {}
        self._last_change: dict[uuid.UUID, float] = {}
        self._timers: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._running: set[uuid.UUID] = set()
        self._schedule: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> set[uuid.UUID]:
        """Tenants with changes not yet backed up (or being backed up right now)."""
        return set(self._last_change) | self._running | set(self._timers)

    def start(self) -> None:
        if self.interval > 0:
            self._schedule = asyncio.create_task(self._run_schedule(), name="konfig-backups")

    async def on_commit(self, committed: Sequence[Committed]) -> None:
        """The commit hook: note the tenants that changed and start their quiet-period timer."""
        if self.debounce <= 0 or self._closing:
            return
        now = asyncio.get_running_loop().time()
        for tenant_id in {c.tenant_id for c in committed}:
            self._last_change[tenant_id] = now
            self._first_change.setdefault(tenant_id, now)
            self._arm(tenant_id)

    def _arm(self, tenant_id: uuid.UUID) -> None:
        if tenant_id not in self._timers and not self._closing:
            self._timers[tenant_id] = asyncio.create_task(
                self._after_quiet(tenant_id), name=f"konfig-backup-{tenant_id}"
            )

    async def _after_quiet(self, tenant_id: uuid.UUID) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due = min(
                    self._last_change[tenant_id] + self.debounce,
                    self._first_change[tenant_id] + self.debounce * _MAX_WAIT,
                )
                if loop.time() >= due:
                    break
                await asyncio.sleep(due - loop.time())
            await self._take_pending(tenant_id)
        finally:
            self._timers.pop(tenant_id, None)
        if tenant_id in self._last_change:  # changed while being backed up, or failed
            self._arm(tenant_id)

    async def _take_pending(self, tenant_id: uuid.UUID) -> None:
        """Back up the tenant's pending changes; on failure they stay pending for a retry."""
        marked = self._last_change.pop(tenant_id, None)
        first = self._first_change.pop(tenant_id, None)
        if marked is None or first is None:
            return
        self._running.add(tenant_id)
        try:
            ok = await self.backup(tenant_id, "auto")
        finally:
            self._running.discard(tenant_id)
        if not ok:
            now = asyncio.get_running_loop().time()
            self._last_change.setdefault(tenant_id, now)
            self._first_change.setdefault(tenant_id, now)

    async def backup(self, tenant_id: uuid.UUID, trigger: Trigger) -> bool:
        """Take one backup in its own read transaction; failures are logged and counted."""
        try:
            session = await open_session(self.sessionmaker, write=False)
            try:
                await bind_tenant(session, tenant_id)
                await take(session, backups=self.backups, tenant_id=tenant_id, trigger=trigger)
            finally:
                await session.rollback()
                await session.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # already in the status when it came from take()
            log.warning("automatic backup of tenant %s failed: %s", tenant_id, type(exc).__name__)
            return False
        return True

    async def run_schedule_once(self) -> None:
        """Back up every tenant whose newest backup is older than the interval."""
        session = await open_session(self.sessionmaker, write=False)
        try:
            async with across_tenants(session, "backups: which tenants are due"):
                tenants = await repository.tenants_with_namespaces(session)
        finally:
            await session.rollback()
            await session.close()
        limit = timedelta(seconds=self.interval)
        for tenant_id, name in tenants:
            if self._closing:
                return
            newest = await asyncio.to_thread(self.backups.store.newest, name)
            if newest is None or utcnow() - newest >= limit:
                await self.backup(tenant_id, "scheduled")

    async def _run_schedule(self) -> None:
        tick = min(self.interval, _MAX_TICK)
        while True:
            await asyncio.sleep(tick)
            try:
                await self.run_schedule_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the backup schedule failed; it runs again in %s s", tick)

    async def close(self) -> None:
        """Stop the schedule, then take every pending backup now (the lifespan's shutdown)."""
        self._closing = True
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule
        waiting = [task for tid, task in self._timers.items() if tid not in self._running]
        for task in waiting:
            task.cancel()  # still in its quiet period: flushed below
        try:
            async with asyncio.timeout(_SHUTDOWN_SECONDS):
                await asyncio.gather(*self._timers.values(), return_exceptions=True)
                for tenant_id in list(self._last_change):
                    await self._take_pending(tenant_id)
        except TimeoutError:
            log.error("pending backups did not finish within %s s of shutdown", _SHUTDOWN_SECONDS)
