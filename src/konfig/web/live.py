"""Live updates for open pages: the revision of each namespace a page watches, on every replica.

The feed listens to the delivery layer's change announcements (``konfig.delivery.wiring``):
this process's own commits and, through PostgreSQL ``LISTEN/NOTIFY`` or Redis pub/sub, every
other replica's. An announcement names the namespace, not its revision, so the feed reads the
revision once per announcement and namespace, however many pages watch it, and hands each
subscriber the newest one.

A notification lost while a replica's listener reconnects is caught up when the page's stream
ends and the browser reconnects with the revision it shows (``since``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from konfig.delivery.notifier import Event

log = logging.getLogger("konfig.web")

ReadRevision = Callable[[uuid.UUID, uuid.UUID], Awaitable[int | None]]


class RevisionStream(Protocol):
    """An async iterator of revisions that can be closed early (an async generator is one)."""

    def __aiter__(self) -> RevisionStream: ...

    async def __anext__(self) -> int: ...

    async def aclose(self) -> None: ...


class RevisionFeed(Protocol):
    def subscribe(self, namespace_id: uuid.UUID) -> RevisionStream: ...


class Subscription:
    """Revisions of one namespace announced since it was opened; only the newest is kept, and
    none it has already handed out (an announcement may not change the revision).

    It is registered when created (not when first iterated), so a page that reads the current
    revision right after subscribing misses nothing committed in between.
    """

    def __init__(self, feed: NamespaceFeed, namespace_id: uuid.UUID) -> None:
        self._feed = feed
        self.namespace_id = namespace_id
        self._latest: int | None = None
        self._handed = -1
        self._wake = asyncio.Event()
        self._closed = False
        feed._subscribers.setdefault(namespace_id, set()).add(self)

    def offer(self, revision: int) -> None:
        if revision > self._handed and (self._latest is None or revision > self._latest):
            self._latest = revision
            self._wake.set()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        group = self._feed._subscribers.get(self.namespace_id)
        if group is not None:
            group.discard(self)
            if not group:
                del self._feed._subscribers[self.namespace_id]
        self._wake.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> int:
        while self._latest is None:
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        revision, self._latest = self._latest, None
        self._handed = revision
        return revision


class NamespaceFeed:
    """Fans announced namespace changes out to this process's subscribers, with the revision.

    ``announced`` is a listener of ``Delivery``: it runs synchronously inside the delivery
    layer's handling of an announcement, so it only schedules the reads.
    """

    def __init__(self, read_revision: ReadRevision) -> None:
        self.read_revision = read_revision
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._reading: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()

    def subscribe(self, namespace_id: uuid.UUID) -> Subscription:
        return Subscription(self, namespace_id)

    def subscriber_count(self, namespace_id: uuid.UUID) -> int:
        return len(self._subscribers.get(namespace_id, ()))

    def announced(self, events: Iterable[Event]) -> None:
        for kind, tenant_id, namespace_id, _name in events:
            if kind == "ns" and namespace_id in self._subscribers:
                self._read_soon(tenant_id, namespace_id)

    def _read_soon(self, tenant_id: uuid.UUID, namespace_id: uuid.UUID) -> None:
        if namespace_id in self._reading:
            self._again.add(namespace_id)  # read once more when the read under way is done
            return
        task = asyncio.get_running_loop().create_task(self._read(tenant_id, namespace_id))
        self._reading[namespace_id] = task

    async def _read(self, tenant_id: uuid.UUID, namespace_id: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(namespace_id)
                try:
                    revision = await self.read_revision(tenant_id, namespace_id)
                except Exception:
                    log.warning("could not read the revision of a changed namespace", exc_info=True)
                    revision = None
                if revision is not None:
                    for subscription in list(self._subscribers.get(namespace_id, ())):
                        subscription.offer(revision)
                if namespace_id not in self._again:
                    return
        finally:
            self._reading.pop(namespace_id, None)

    async def idle(self) -> None:
        """Wait for the reads under way (for tests and shutdown)."""
        while self._reading:
            await asyncio.gather(*self._reading.values(), return_exceptions=True)
