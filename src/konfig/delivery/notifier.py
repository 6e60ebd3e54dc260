"""How replicas tell each other about changes: PostgreSQL LISTEN/NOTIFY, or Redis pub/sub when
``KONFIG_REDIS_URL`` is set.

A message is JSON ``{"o": origin, "e": [[kind, tenant_id, id, name], ...]}`` with kind ``ns``
(a namespace's entries or includes changed, or it was created or deleted), ``token`` (revoked
or deleted), ``user`` (deactivated, deleted, role changed), ``login`` (a user's login ended:
logout, a replayed refresh token) or ``tenant`` (deleted, suspended).
Each process skips its own messages: it applied them before publishing.

Each transport keeps one listening connection. When it is lost the process stops caching
(``on_down``), reconnects with backoff, and starts again from an empty cache once it listens
again (``on_up``): whatever was announced in between cannot have been missed. A periodic check
on the connection catches one that died silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import orjson
from sqlalchemy.engine import make_url

log = logging.getLogger("konfig.notify")

Event = tuple[str, uuid.UUID, uuid.UUID, str]  # kind, tenant id, object id, name
_MAX_EVENTS_PER_MESSAGE = 40  # PostgreSQL refuses NOTIFY payloads over 8,000 bytes


def encode(origin: str, events: Sequence[Event]) -> list[str]:
    return [
        orjson.dumps(
            {
                "o": origin,
                "e": [
                    [kind, str(tenant), str(obj), name]
                    for kind, tenant, obj, name in events[i : i + _MAX_EVENTS_PER_MESSAGE]
                ],
            }
        ).decode()
        for i in range(0, len(events), _MAX_EVENTS_PER_MESSAGE)
    ]


def decode(payload: str | bytes) -> tuple[str, list[Event]]:
    message = orjson.loads(payload)
    events = [
        (str(kind), uuid.UUID(tenant), uuid.UUID(obj), str(name))
        for kind, tenant, obj, name in message["e"]
    ]
    return str(message["o"]), events


class Transport(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, payload: str) -> None: ...


class _Supervised:
    """Keeps one listening connection up, calling ``on_up``/``on_down`` as it comes and goes."""

    name = "listener"

    def __init__(
        self,
        *,
        on_message: Callable[[str | bytes], None],
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        check_seconds: float,
    ) -> None:
        self.on_message = on_message
        self.on_up = on_up
        self.on_down = on_down
        self.check_seconds = check_seconds
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"konfig-{self.name}")
        # Serve with a warm cache when the listener comes up promptly; otherwise serve from the
        # database while it keeps trying.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _received(self, payload: str | bytes) -> None:
        try:
            self.on_message(payload)
        except Exception:
            log.warning("ignored a malformed change notification", exc_info=True)

    async def _supervise(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s lost (%s: %s); reconnecting", self.name, type(exc).__name__, exc)
            finally:
                self.on_down()
                self._first_attempt.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _listening(self) -> None:
        self.on_up()
        self._first_attempt.set()

    async def _listen(self) -> None:
        raise NotImplementedError


class PostgresTransport(_Supervised):
    name = "PostgreSQL listener"

    def __init__(self, *, url: str, channel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self._publisher: Any = None  # asyncpg.Connection, made on first use
        self._publishing = asyncio.Lock()

    async def _listen(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(
            self.dsn, timeout=10, server_settings={"application_name": "konfig-listener"}
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(
                self.channel, lambda _c, _pid, _channel, payload: self._received(payload)
            )
            self._listening()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=self.check_seconds)
                if not lost.is_set():
                    await connection.fetchval("SELECT 1", timeout=self.check_seconds)
            raise ConnectionError("the listening connection was closed")
        finally:
            connection.terminate()

    async def publish(self, payload: str) -> None:
        """One round trip on a connection kept for publishing (a pooled one cost a checkout, a
        ping and a transaction of its own: four)."""
        import asyncpg

        async with self._publishing:
            if self._publisher is None or self._publisher.is_closed():
                self._publisher = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": "konfig-publisher"}
                )
            try:
                await self._publisher.execute("SELECT pg_notify($1, $2)", self.channel, payload)
            except BaseException:
                publisher, self._publisher = self._publisher, None
                publisher.terminate()
                raise

    async def stop(self) -> None:
        await super().stop()
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            with contextlib.suppress(Exception):
                await publisher.close(timeout=5)


class RedisTransport(_Supervised):
    name = "Redis subscriber"

    def __init__(self, *, url: str, channel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import redis.asyncio as redis

        self.url = url
        self.channel = channel
        self.publisher = redis.Redis.from_url(url)

    async def _listen(self) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No silent reconnects: a lost connection must surface here, so the cache is dropped.
        client = redis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=max(1, int(self.check_seconds)),
            client_name=f"konfig-listener:{self.channel}",
            socket_connect_timeout=10,
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while True:  # the subscription counts once the server has confirmed it
                confirmed = await pubsub.get_message(timeout=10)
                if confirmed is None:
                    raise ConnectionError("Redis did not confirm the subscription")
                if confirmed["type"] == "subscribe":
                    break
            self._listening()
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.check_seconds
                )
                if message is not None and message["type"] == "message":
                    self._received(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def publish(self, payload: str) -> None:
        await self.publisher.publish(self.channel, payload)

    async def stop(self) -> None:
        await super().stop()
        await self.publisher.aclose()


class Notifier:
    """Publishes this process's changes and applies everyone else's."""

    def __init__(self, apply: Callable[[Iterable[Event]], None]) -> None:
        self.origin = uuid.uuid4().hex
        self.apply = apply
        self.transport: Transport | None = None

    def received(self, payload: str | bytes) -> None:
        origin, events = decode(payload)
        if origin != self.origin:
            self.apply(events)

    async def publish(self, events: Sequence[Event]) -> None:
        if self.transport is None or not events:
            return
        for payload in encode(self.origin, events):
            for attempt in (1, 2):
                try:
                    await self.transport.publish(payload)
                    break
                except Exception:
                    if attempt == 2:
                        # Other replicas re-read what they cached within its max age.
                        log.error("could not announce a change to other replicas", exc_info=True)
