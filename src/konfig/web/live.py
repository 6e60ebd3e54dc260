"""Live updates for open pages: revisions committed in this process, per namespace.

The interface is one call, ``subscribe(namespace_id)``, an async iterator of revisions, so a
cross-replica notifier can take this broadcaster's place without the pages noticing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Protocol

from konfig.revisions.writer import Committed


class RevisionStream(Protocol):
    """An async iterator of revisions that can be closed early (an async generator is one)."""

    def __aiter__(self) -> RevisionStream: ...

    async def __anext__(self) -> int: ...

    async def aclose(self) -> None: ...


class RevisionFeed(Protocol):
    def subscribe(self, namespace_id: uuid.UUID) -> RevisionStream: ...


class Subscription:
    """Revisions of one namespace committed since it was opened; only the newest is kept.

    It is registered when created (not when first iterated), so a page that reads the current
    revision right after subscribing misses nothing committed in between.
    """

    def __init__(self, broadcaster: Broadcaster, namespace_id: uuid.UUID) -> None:
        self._broadcaster = broadcaster
        self.namespace_id = namespace_id
        self._latest: int | None = None
        self._wake = asyncio.Event()
        self._closed = False
        broadcaster._subscribers.setdefault(namespace_id, set()).add(self)

    def _offer(self, revision: int) -> None:
        if self._latest is None or revision > self._latest:
            self._latest = revision
            self._wake.set()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        group = self._broadcaster._subscribers.get(self.namespace_id)
        if group is not None:
            group.discard(self)
            if not group:
                del self._broadcaster._subscribers[self.namespace_id]
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
        return revision


class Broadcaster:
    """Fans ``Committed`` revisions out to this process's subscribers (a commit hook)."""

    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}

    def subscribe(self, namespace_id: uuid.UUID) -> Subscription:
        return Subscription(self, namespace_id)

    async def publish(self, committed: Sequence[Committed]) -> None:
        for change in committed:
            for subscription in list(self._subscribers.get(change.namespace_id, ())):
                subscription._offer(change.revision)

    def subscriber_count(self, namespace_id: uuid.UUID) -> int:
        return len(self._subscribers.get(namespace_id, ()))
