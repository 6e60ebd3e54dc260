"""Rate limits (the ``limits`` library): credentials per client address and per account, every
other authenticated request per principal, the read path on its own, much higher budget.

Counters live in memory, or in Redis when ``KONFIG_REDIS_URL`` is set so that every replica
shares them. If Redis stops answering, the limiter falls back to its in-memory counters for a
few seconds at a time rather than failing requests: each replica then enforces the limits alone.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from starlette.types import Scope

from konfig.errors import RateLimited
from konfig.metrics import Metrics
from konfig.settings import Settings
from konfig.state import state_of

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

log = logging.getLogger("konfig.ratelimit")

_REDIS_TIMEOUT_SECONDS = 0.5
_REDIS_RETRY_SECONDS = 5.0

CredentialAction = Literal["login", "register"]


def client_address(scope: Scope) -> str:
    """The caller's address as the ASGI server saw it (uvicorn has applied proxy headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _account_key(email: str) -> str:
    # Hashed so Redis holds no email addresses.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class _LocalStorage(MemoryStorage):
    """limits' in-memory storage, with its clean-up run at most once a second.

    The library schedules a clean-up after every hit, and the clean-up hops to a thread once
    per moving-window key (every recent login's address and account): a few thread hops per
    request that grew with the number of recent logins. Expired counters are ignored when read
    whatever the clean-up does, so running it less often only keeps memory a second longer.
    """

    _SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._swept_at = -math.inf

    async def _MemoryStorage__schedule_expiry(self) -> None:  # the base's private hook
        now = time.monotonic()
        if now - self._swept_at >= self._SWEEP_SECONDS:
            self._swept_at = now
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class SlidingWindows:
    """The sliding-window counter of ``limits`` (this window's count plus the last window's,
    weighted by how much of it still overlaps), kept in this process without an await.

    Every read-path request is counted: through the library's asyncio storage (a lock, several
    awaits and its clean-up scheduling per hit) counting cost a sixth of the read path's time.
    """

    def __init__(self, prune_above: int = 10_000) -> None:
        self.prune_above = prune_above  # keys: past that, windows older than the last are dropped
        # (limit name, key, period) -> [window start, hits in it, hits in the window before]
        self._slots: dict[tuple[str, str, int], list[float]] = {}

    def refusal(
        self, name: str, items: Sequence[RateLimitItem], key: str
    ) -> tuple[RateLimitItem, int] | None:
        now = time.time()
        for item in items:
            retry_after = self.hit(name, key, item.amount, item.get_expiry(), now)
            if retry_after is not None:
                return item, retry_after
        return None

    def __len__(self) -> int:
        """How many (limit, key, period) windows are counted."""
        return len(self._slots)

    def hit(self, name: str, key: str, amount: int, period: int, now: float) -> int | None:
        """Count one hit at ``now``: None if the budget has room, or else the seconds to wait."""
        start = now - now % period
        slot = self._slots.get((name, key, period))
        if slot is None:
            if len(self._slots) >= self.prune_above:
                self._prune(now)
            slot = self._slots[(name, key, period)] = [start, 0.0, 0.0]
        elif slot[0] != start:
            slot[2] = slot[1] if start - slot[0] == period else 0.0
            slot[0], slot[1] = start, 0.0
        overlap = 1 - (now - start) / period
        if slot[2] * overlap + slot[1] + 1 <= amount:
            slot[1] += 1
            return None
        if slot[1] + 1 > amount or slot[2] == 0:  # only the next window has room
            wait = start + period - now
        else:  # room once enough of the last window has slid out
            wait = start + period * (1 - (amount - slot[1] - 1) / slot[2]) - now
        return max(1, math.ceil(wait))

    def _prune(self, now: float) -> None:
        for slot_key, (start, *_) in list(self._slots.items()):
            if now - start >= 2 * slot_key[2]:
                del self._slots[slot_key]


class _Counters:
    """One storage with the two strategies Konfig uses on it."""

    def __init__(self, storage: Storage) -> None:
        # Exact for the small credential budgets; O(1) per hit for the large per-principal ones.
        self.exact: RateLimiter = MovingWindowRateLimiter(storage)
        self.cheap: RateLimiter = SlidingWindowCounterRateLimiter(storage)


def _redis_storage(settings: Settings) -> tuple[RedisStorage, ConnectionPool]:
    from redis.asyncio import ConnectionPool  # only when configured: a slow import

    url = settings.redis_url  # redis:// or rediss://, checked by Settings
    pool = ConnectionPool.from_url(
        url, socket_timeout=_REDIS_TIMEOUT_SECONDS, socket_connect_timeout=_REDIS_TIMEOUT_SECONDS
    )
    storage = RedisStorage(
        f"async+{url}",
        implementation="redispy",
        key_prefix=f"{settings.redis_key_prefix}:ratelimit",
        connection_pool=pool,  # type: ignore[arg-type]  # passed through to redis.asyncio.Redis
    )
    return storage, pool


class RateLimits:
    """The app's limits (``AppState.rate_limits``); every refusal is a 429 ``RATE_LIMITED``
    with ``Retry-After``, counted in ``konfig_rate_limited_requests_total``."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._metrics = metrics
        self._per_account = parse_many(settings.login_rate_limit)
        self._per_address = parse_many(settings.login_address_rate_limit)
        self._per_principal = [RateLimitItemPerMinute(settings.rate_limit_per_minute)]
        self._per_reader = [RateLimitItemPerMinute(settings.read_rate_limit_per_minute)]
        self._local = _Counters(_LocalStorage())
        self._windows = SlidingWindows()  # the local counting of the large budgets
        self._shared: _Counters | None = None
        self._pool: ConnectionPool | None = None
        self._shared_down_until = 0.0
        self._storage_errors: tuple[type[Exception], ...] = (StorageError, OSError)
        if settings.redis_url:
            from redis.exceptions import RedisError

            storage, self._pool = _redis_storage(settings)
            self._shared = _Counters(storage)
            self._storage_errors += (RedisError,)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def check_credentials(
        self, *, action: CredentialAction, address: str, email: str
    ) -> None:
        """Count a login or registration attempt against its client address and its account."""
        await self._hit(f"{action}_address", self._per_address, address, exact=True)
        await self._hit(f"{action}_account", self._per_account, _account_key(email), exact=True)

    async def check_principal(self, *, actor: str, read: bool = False) -> None:
        """Count an authenticated request against its principal (``read``: the read path)."""
        if read:
            await self._hit("read", self._per_reader, actor, exact=False)
        else:
            await self._hit("principal", self._per_principal, actor, exact=False)

    def _counters(self) -> _Counters:
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            return self._shared
        return self._local

    async def _hit(
        self, name: str, items: Sequence[RateLimitItem], key: str, *, exact: bool
    ) -> None:
        counters = self._counters()
        if counters is self._local and not exact:
            refused = self._windows.refusal(name, items, key)
        else:
            try:
                refused = await self._first_refusal(counters, name, items, key, exact=exact)
            except self._storage_errors as exc:
                if counters is self._local:
                    raise
                self._shared_down_until = time.monotonic() + _REDIS_RETRY_SECONDS
                log.warning(
                    "rate-limit storage unreachable (%s); counting in this process for %ss",
                    type(exc).__name__,
                    _REDIS_RETRY_SECONDS,
                )
                if exact:
                    refused = await self._first_refusal(self._local, name, items, key, exact=True)
                else:
                    refused = self._windows.refusal(name, items, key)
        if refused is None:
            return
        item, retry_after = refused
        self._metrics.rate_limited.labels(limit=name).inc()
        raise RateLimited(
            f"Too many requests: try again in {retry_after} s",
            {"limit": str(item), "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    @staticmethod
    async def _first_refusal(
        counters: _Counters, name: str, items: Sequence[RateLimitItem], key: str, *, exact: bool
    ) -> tuple[RateLimitItem, int] | None:
        strategy = counters.exact if exact else counters.cheap
        for item in items:
            if not await strategy.hit(item, name, key):
                stats = await strategy.get_window_stats(item, name, key)
                return item, max(1, math.ceil(stats.reset_time - time.time()))
        return None


async def limit_credentials(request: Request, *, action: CredentialAction, email: str) -> None:
    """Count a login or registration attempt; 429 when its address or account is over budget."""
    limiter = state_of(request).rate_limits
    await limiter.check_credentials(
        action=action, address=client_address(request.scope), email=email
    )
