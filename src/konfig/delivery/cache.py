"""The per-process cache of resolved configs, and the watchers waiting for them to change.

Each entry is one namespace's resolved config with its rendered bytes per format, built once
and dropped as soon as a change to anything it inherits is announced (by this process's own
commits or by another replica). Three rules keep a replica from serving an old value after the
announcement of a new one:

- announcements drop entries synchronously, before anything else runs;
- a load that was under way when an announcement concerning its tenant arrived is not cached
  (the tenant's generation moved), and later requests do not join it;
- while this process cannot hear announcements (its listener connection is down) nothing is
  cached at all, and when it hears again it starts from an empty cache.

An entry older than ``max_age`` is loaded again on its next use: a backstop for an announcement
lost in a crash between a commit and its publication.

Behind a load balancer a client may get a state from one replica and ask another that has not
heard of it yet (the announcement takes a moment, or was lost in a crash). So that it is never
sent an older state, the cache remembers the ETags of the last states it has held for each
namespace (``knows``): a client whose ``If-None-Match`` or ``Last-Event-ID`` names none of them
may hold a newer state, and is answered from the database (``reload``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from konfig.delivery import render
from konfig.delivery.resolve import Resolution
from konfig.errors import KonfigError
from konfig.flags.definition import EVALUATORS_KEY, FlagSet

log = logging.getLogger("konfig.delivery")

# ETags remembered per namespace (every format counts): a client further behind is answered
# from the database, which costs a load, never a wrong answer.
_KNOWN_STATES = 32
Wake = Literal["changed", "timeout", "heartbeat", "gone", "shutdown", "revoked"]
# Resolves several namespaces of a tenant at once: None for one that does not exist.
LoadMany = Callable[[uuid.UUID, list[str]], Awaitable[dict[str, Resolution | None]]]


class Follower(Protocol):
    """A watcher that takes a change itself, its waiter left pending (an event stream)."""

    def follow(
        self, resolved: Resolved, waiter: asyncio.Future[Wake], shared: dict[Any, Any]
    ) -> bool:
        """Take ``resolved``, the new state, and watch it from now on; False to be woken.
        ``shared`` is the same for every follower the state is handed to, for what they can
        work out once between them."""
        ...


@dataclass(frozen=True, slots=True)
class Variant:
    """One rendering of a resolved config, ready to send."""

    body: bytes
    etag: bytes  # the quoted ETag header value
    headers: list[tuple[bytes, bytes]]
    not_modified_headers: list[tuple[bytes, bytes]]


class Resolved:
    """A namespace's resolved config as cached: renders each format at most once, revealed or
    with its secrets masked (two renderings apart, each with its own ETag; without secrets they
    are one and the same)."""

    __slots__ = (
        "_chunks",
        "_events",
        "_flags",
        "_masked",
        "_variants",
        "current",
        "etag",
        "followers",
        "fresh_until",
        "known",
        "resolution",
        "tenant_id",
        "waiters",
    )

    def __init__(
        self,
        tenant_id: uuid.UUID,
        resolution: Resolution,
        max_age: float,
        known: deque[bytes] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.resolution = resolution
        self.etag = render.digest(render.json_body(resolution.values))
        self.fresh_until = time.monotonic() + max_age
        self.current = False  # True while this is the cache's answer for its namespace
        self.waiters: set[asyncio.Future[Wake]] = set()
        # Those of the waiters whose watcher takes the next state itself (``_refreshed``).
        self.followers: dict[Follower, asyncio.Future[Wake]] = {}
        self._variants: dict[tuple[str, bool], Variant | KonfigError] = {}
        self._events: dict[bool, bytes] = {}
        self._chunks: dict[bool, bytes] = {}
        self._masked: tuple[Resolution, str] | None = None
        self._flags: FlagSet | None = None
        # The ETags this process has sent for the namespace (shared by its successive states).
        self.known = known if known is not None else deque(maxlen=_KNOWN_STATES)
        self.known.append(f'"{self.etag}"'.encode())

    def shown(self, reveal: bool) -> tuple[Resolution, str]:
        """The resolution as sent and its (unquoted) ETag: revealed, or with secrets masked."""
        if self._plain(reveal):
            return self.resolution, self.etag
        if self._masked is None:
            masked = render.masked(self.resolution)
            self._masked = (masked, render.digest(render.json_body(masked.values)))
            self.known.append(f'"{self._masked[1]}"'.encode())
        return self._masked

    def flags(self) -> FlagSet:
        """The namespace's feature flags, compiled once per state (OFREP evaluates them)."""
        if self._flags is None:
            resolution = self.resolution
            values = resolution.values
            if EVALUATORS_KEY in resolution.secrets:  # shared rules come from plain entries
                values = {k: v for k, v in values.items() if k != EVALUATORS_KEY}
            self._flags = FlagSet(values, resolution.flags)
        return self._flags

    def _plain(self, reveal: bool) -> bool:
        """Whether the answer is the resolution itself: revealed, or holding no secret."""
        return reveal or not self.resolution.secrets

    def reveals(self, reveal: bool) -> bool:
        """Whether an answer with ``reveal`` shows secret values (what the audit counts)."""
        return reveal and bool(self.resolution.secrets)

    def variant(self, fmt: str, reveal: bool = True) -> Variant:
        """The rendering for ``fmt`` (a format or ``explain``), secrets shown when ``reveal``;
        raises what rendering raised."""
        key = (fmt, self._plain(reveal))
        found = self._variants.get(key)
        if found is None:
            try:
                found = self._render(fmt, key[1])
            except KonfigError as exc:
                found = exc
            else:
                self.known.append(found.etag)
            self._variants[key] = found
        if isinstance(found, KonfigError):
            raise found
        return found

    def _render(self, fmt: str, reveal: bool) -> Variant:
        resolution, base = self.shown(reveal)
        if fmt == "explain":
            body = render.explain_body(resolution, f'"{base}"')
            etag = f'"{render.digest(body)}.explain"'
        else:
            body = render.RENDERERS[fmt](resolution.values)
            etag = f'"{base}"' if fmt == "json" else f'"{base}.{fmt}"'
        raw_etag = etag.encode()
        caching = (b"cache-control", b"private, no-cache")
        return Variant(
            body=body,
            etag=raw_etag,
            headers=[
                (b"content-type", render.MEDIA_TYPES[fmt]),
                (b"content-length", str(len(body)).encode()),
                (b"etag", raw_etag),
                caching,
            ],
            not_modified_headers=[(b"etag", raw_etag), caching],
        )

    def event(self, reveal: bool = True) -> bytes:
        """This state as one server-sent event (shared by every stream that sends it)."""
        reveal = self._plain(reveal)
        found = self._events.get(reveal)
        if found is None:
            resolution, etag = self.shown(reveal)
            data = render.event_body(resolution, f'"{etag}"')
            found = b"id: " + etag.encode() + b"\nevent: change\ndata: " + data + b"\n\n"
            self._events[reveal] = found
        return found

    def event_chunk(self, reveal: bool = True) -> bytes:
        """``event`` as one chunk of HTTP/1.1 chunked transfer-encoding, exactly as uvicorn
        frames a body message (for the streams written directly, ``konfig.delivery.stream``)."""
        reveal = self._plain(reveal)
        found = self._chunks.get(reveal)
        if found is None:
            event = self.event(reveal)
            found = self._chunks[reveal] = b"%x\r\n" % len(event) + event + b"\r\n"
        return found


@dataclass(slots=True)
class _Flight:
    """A load under way, which every request for the namespace joins while its stamp holds."""

    stamp: tuple[int, int]
    future: asyncio.Future[Resolved | None]


def _wake(waiters: set[asyncio.Future[Wake]], why: Wake) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(why)
    waiters.clear()


class ResolvedCache:
    def __init__(self, load_many: LoadMany, *, max_entries: int, max_age: float) -> None:
        self.load_many = load_many
        self.max_entries = max_entries
        self.max_age = max_age
        self.tenants: dict[uuid.UUID, dict[str, Resolved]] = {}
        self.enabled = True
        self.closing = False
        self._size = 0
        self._epoch = 0
        self._generations: dict[uuid.UUID, int] = {}
        self._flights: dict[tuple[uuid.UUID, str], _Flight] = {}
        self._idle: set[asyncio.Future[Wake]] = set()  # watchers waiting for caching to resume
        self._refreshing: set[Resolved] = set()  # dropped entries whose watchers await a reload
        self._tasks: set[asyncio.Future[None]] = set()
        self._known: dict[tuple[uuid.UUID, str], deque[bytes]] = {}
        # Per tenant, which cached names read each namespace (by id) or looked up each name: a
        # change finds what it concerns here instead of scanning the tenant's cached entries.
        self._readers: dict[uuid.UUID, dict[uuid.UUID | str, set[str]]] = {}

    # Reading ----------------------------------------------------------------------------------

    def get(self, tenant_id: uuid.UUID, name: str) -> Resolved | None:
        """The cached entry, if it is there and fresh (the hot path: two dict lookups)."""
        names = self.tenants.get(tenant_id)
        if names is None:
            return None
        found = names.get(name)
        if found is None or found.fresh_until < time.monotonic():
            return None
        return found

    async def resolve(self, tenant_id: uuid.UUID, name: str) -> Resolved | None:
        """The current resolved config (cached, or loaded once however many ask at once)."""
        found = self.get(tenant_id, name)
        if found is not None:
            return found
        stamp = self._stamp(tenant_id)
        flight = self._flights.get((tenant_id, name))
        if flight is None or flight.stamp != stamp:
            flight = self._start(tenant_id, [name], stamp)[name]
        return await asyncio.shield(flight.future)

    def knows(self, tenant_id: uuid.UUID, name: str, etags: bytes) -> bool:
        """Whether this process has held every state of ``name`` that ``etags`` (an
        ``If-None-Match`` value) names: then its current entry is at least as new as anything
        the client holds."""
        known = self._known.get((tenant_id, name))
        if known is None:
            return False
        return all(c == b"*" or c in known for c in render.named_etags(etags))

    async def reload(self, tenant_id: uuid.UUID, name: str) -> Resolved | None:
        """The namespace as the database has it now, whatever is cached (and cached in its
        place): for a client holding a state this process has not heard of."""
        flight = self._start(tenant_id, [name], self._stamp(tenant_id))[name]
        return await asyncio.shield(flight.future)

    def _known_states(self, tenant_id: uuid.UUID, name: str) -> deque[bytes]:
        key = (tenant_id, name)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self.max_entries:
                del self._known[next(iter(self._known))]  # the longest-known namespace
            known = self._known[key] = deque(maxlen=_KNOWN_STATES)
        return known

    def _stamp(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        return (self._epoch, self._generations.get(tenant_id, 0))

    def _start(
        self, tenant_id: uuid.UUID, names: list[str], stamp: tuple[int, int]
    ) -> dict[str, _Flight]:
        """Load these namespaces in one go; requests for any of them join in meanwhile."""
        loop = asyncio.get_running_loop()
        flights = {}
        for name in names:
            future: asyncio.Future[Resolved | None] = loop.create_future()
            future.add_done_callback(_consume)
            flights[name] = self._flights[(tenant_id, name)] = _Flight(stamp, future)
        task = asyncio.ensure_future(self._load(tenant_id, flights, stamp))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flights

    async def _load(
        self, tenant_id: uuid.UUID, flights: dict[str, _Flight], stamp: tuple[int, int]
    ) -> None:
        try:
            found = await self.load_many(tenant_id, list(flights))
        except (Exception, asyncio.CancelledError) as exc:
            for name, flight in flights.items():
                self._land(tenant_id, name, flight)
                if isinstance(exc, asyncio.CancelledError):
                    flight.future.cancel()
                elif not flight.future.done():
                    flight.future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        # A change announced while we were reading may concern what we read: then the result
        # answers the requests that were already waiting, but is not kept.
        keep = self.enabled and stamp == self._stamp(tenant_id)
        for name, flight in flights.items():
            self._land(tenant_id, name, flight)
            resolution = found.get(name)
            resolved = None
            if resolution is not None:
                known = self._known_states(tenant_id, name)
                resolved = Resolved(tenant_id, resolution, self.max_age, known)
            if resolved is not None and keep:
                self._store(name, resolved)
            if not flight.future.done():
                flight.future.set_result(resolved)

    def _land(self, tenant_id: uuid.UUID, name: str, flight: _Flight) -> None:
        if self._flights.get((tenant_id, name)) is flight:
            del self._flights[(tenant_id, name)]

    def _store(self, name: str, resolved: Resolved) -> None:
        names = self.tenants.setdefault(resolved.tenant_id, {})
        previous = names.get(name)
        if previous is not None:
            # Reloaded after max_age: whoever waits on the old one looks again.
            self._drop(names, name, previous)
        if self._size >= self.max_entries:
            self._evict()
        names[name] = resolved
        resolved.current = True
        self._size += 1
        readers = self._readers.setdefault(resolved.tenant_id, {})
        for dependency in _dependencies(resolved):
            readers.setdefault(dependency, set()).add(name)

    def _unlist(self, names: dict[str, Resolved], name: str, resolved: Resolved) -> None:
        """Take ``name`` out of the cache and out of the readers of what it depends on."""
        del names[name]
        self._size -= 1
        resolved.current = False
        readers = self._readers.get(resolved.tenant_id, {})
        for dependency in _dependencies(resolved):
            found = readers.get(dependency)
            if found is not None:
                found.discard(name)
                if not found:
                    del readers[dependency]

    def _drop(self, names: dict[str, Resolved], name: str, resolved: Resolved) -> None:
        self._unlist(names, name, resolved)
        _wake(resolved.waiters, "changed")

    def _evict(self) -> None:
        """Make room: drop a tenth of the entries nobody is watching, oldest first."""
        budget = max(1, self.max_entries // 10)
        for names in list(self.tenants.values()):
            for name, resolved in list(names.items()):
                if budget <= 0:
                    return
                if not resolved.waiters:
                    self._drop(names, name, resolved)
                    budget -= 1

    # Watching ---------------------------------------------------------------------------------

    def watch(self, resolved: Resolved, follower: Follower | None = None) -> asyncio.Future[Wake]:
        """A future that completes when ``resolved`` stops being the current answer; with a
        ``follower``, one that stays pending while the follower takes the changes itself."""
        waiter: asyncio.Future[Wake] = asyncio.get_running_loop().create_future()
        if self.closing:
            waiter.set_result("shutdown")
        elif resolved.current:
            resolved.waiters.add(waiter)
            if follower is not None:
                resolved.followers[follower] = waiter
        elif self.enabled:
            waiter.set_result("changed")  # it changed while we looked: look again
        else:
            self._idle.add(waiter)  # nothing to hear until the listener is back
        return waiter

    def unwatch(
        self, resolved: Resolved, waiter: asyncio.Future[Wake], follower: Follower | None = None
    ) -> None:
        resolved.waiters.discard(waiter)
        if follower is not None:
            resolved.followers.pop(follower, None)
        self._idle.discard(waiter)

    # Announcements ----------------------------------------------------------------------------

    def invalidate(self, tenant_id: uuid.UUID, namespace_id: uuid.UUID, name: str) -> None:
        """A namespace changed: drop every entry that read it or looked for its name.

        Entries somebody watches are loaded again at once, and their watchers woken when the
        new state is in the cache: a thousand watchers cost one load and no extra round trip.
        """
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1
        names = self.tenants.get(tenant_id)
        readers = self._readers.get(tenant_id)
        if not names or not readers:
            return
        concerned = readers.get(namespace_id, set()) | readers.get(name, set())
        stale: list[tuple[str, Resolved]] = []
        for cached_name in sorted(concerned):
            resolved = names[cached_name]
            if resolved.waiters:
                self._unlist(names, cached_name, resolved)
                stale.append((cached_name, resolved))
            else:
                self._drop(names, cached_name, resolved)
        if stale:
            self._refresh(tenant_id, stale)

    def _refresh(self, tenant_id: uuid.UUID, stale: list[tuple[str, Resolved]]) -> None:
        """Load the watched entries a change concerns, all in one go (a change to a parent
        reloads its hundred children with a few queries), then wake their watchers."""
        flights = self._start(tenant_id, [name for name, _ in stale], self._stamp(tenant_id))
        for name, resolved in stale:
            self._refreshing.add(resolved)
            flights[name].future.add_done_callback(functools.partial(self._refreshed, resolved))

    def _refreshed(self, stale: Resolved, loaded: asyncio.Future[Resolved | None]) -> None:
        self._refreshing.discard(stale)
        if stale.followers:
            self._hand_over(stale, loaded)
        # Failed or not: the watchers look again, and meet the error if there is one.
        _wake(stale.waiters, "shutdown" if self.closing else "changed")

    def _hand_over(self, stale: Resolved, loaded: asyncio.Future[Resolved | None]) -> None:
        """Give the new state to the followers of the old one, in one loop: each that takes it
        watches the new state with its waiter still pending (its task never woken); the others
        are woken with the rest."""
        followers, stale.followers = stale.followers, {}
        fresh = None if loaded.cancelled() or loaded.exception() else loaded.result()
        if fresh is None or not fresh.current or self.closing:
            return
        waiters = fresh.waiters
        shared: dict[Any, Any] = {}
        for follower, waiter in followers.items():
            try:
                taken = follower.follow(fresh, waiter, shared)
            except Exception:
                log.exception("a change could not be handed to a stream: waking it instead")
                taken = False
            if taken:
                stale.waiters.discard(waiter)
                waiters.add(waiter)
                fresh.followers[follower] = waiter

    def behind(self, tenant_id: uuid.UUID, namespace_id: uuid.UUID, revision: int) -> bool:
        """Whether a cached entry read the namespace at a revision older than ``revision``."""
        names = self.tenants.get(tenant_id, {})
        for name in self._readers.get(tenant_id, {}).get(namespace_id, ()):
            resolved = names.get(name)
            if resolved is not None and any(
                layer.id == namespace_id and layer.revision < revision
                for layer in resolved.resolution.layers
            ):
                return True
        return False

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1
        names = self.tenants.get(tenant_id, {})
        for name, resolved in list(names.items()):
            self._drop(names, name, resolved)

    def _drop_all(self) -> None:
        self._epoch += 1
        for names in self.tenants.values():
            for name, resolved in list(names.items()):
                self._drop(names, name, resolved)
        self.tenants.clear()
        self._readers.clear()
        self._size = 0

    def disable(self) -> None:
        """Announcements can no longer be heard: stop caching, send watchers to the database."""
        if self.enabled:
            log.warning("change notifications lost: serving from the database until they resume")
        self.enabled = False
        self._drop_all()

    def enable(self) -> None:
        """Announcements are heard again: start from an empty cache and wake idle watchers."""
        self._drop_all()
        self.enabled = True
        _wake(self._idle, "changed")

    def close(self) -> None:
        """Shutting down: every watcher answers now."""
        self.closing = True
        for names in self.tenants.values():
            for resolved in names.values():
                _wake(resolved.waiters, "shutdown")
        for resolved in self._refreshing:
            _wake(resolved.waiters, "shutdown")
        _wake(self._idle, "shutdown")


def _dependencies(resolved: Resolved) -> Iterator[uuid.UUID | str]:
    """What a cached config depends on: the namespaces it read, and the names it looked up."""
    yield from resolved.resolution.dep_ids
    yield from resolved.resolution.dep_names


def _consume(future: asyncio.Future[Resolved | None]) -> None:
    # A load whose every requester went away must not log "exception never retrieved".
    if not future.cancelled():
        future.exception()
