"""The per-process token cache: an API token is authenticated with one dict lookup of its hash.

Records are loaded from the database on first use and dropped when a revocation (or a change
to the owning user) is announced, here or on another replica. Each record is also re-read after
``max_age`` seconds, a backstop should an announcement ever be lost. Expiry is checked on every
request. ``last_used_at`` is kept in memory and written in the background, not per request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.auth.principal import Principal
from konfig.db.session import across_tenants, open_session
from konfig.errors import Unauthenticated
from konfig.tokens import codec, repository
from konfig.tokens.models import ApiToken
from konfig.tokens.scopes import Permission, Scope, parse_scopes
from konfig.users.grants import EVERYWHERE, Grant, highest, parse_grants
from konfig.users.models import Role, User

log = logging.getLogger("konfig.tokens")

INVALID = "Invalid API token"


class Revocable(Protocol):
    """Something waiting on a token's behalf (a long poll, an event stream)."""

    def settle(self, why: Literal["revoked"]) -> None: ...


@dataclass(slots=True)
class TokenRecord:
    """What one token hash means right now; ``principal`` is None when it must be refused."""

    id: uuid.UUID
    token_hash: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    principal: Principal | None
    refusal: str
    actor: str
    expires_at: float | None  # epoch seconds
    fresh_until: float  # time.monotonic()
    readable: dict[str, bool] = field(default_factory=dict)
    revealing: dict[str, bool] = field(default_factory=dict)

    def may_read(self, namespace: str) -> bool:
        """``principal.allows(namespace, "read")``, remembered per namespace for the hot path."""
        return self._remembered(self.readable, namespace, "read")

    def may_reveal(self, namespace: str) -> bool:
        """``principal.allows(namespace, "secrets")``, remembered per namespace likewise."""
        return self._remembered(self.revealing, namespace, "secrets")

    def _remembered(self, memo: dict[str, bool], namespace: str, permission: Permission) -> bool:
        allowed = memo.get(namespace)
        if allowed is None:
            principal = self.principal
            allowed = principal is not None and principal.allows(namespace, permission)
            memo[namespace] = allowed
        return allowed


def token_principal(token: ApiToken, user: User | None) -> tuple[Principal | None, str]:
    """The principal a token acts as, or why it is refused. A user's token carries its user's
    grants: it never reads, writes or reveals beyond them, whatever its scopes say."""
    if token.revoked_at is not None:
        return None, "This API token has been revoked"
    scopes = parse_scopes(token.scopes)
    ceiling = Role.editor if any("write" in s.permissions for s in scopes) else Role.viewer
    grants: tuple[Grant, ...] | None = None
    if token.user_id is not None:
        if user is None or not user.is_active:
            return None, "The user who owns this API token is no longer active"
        grants = (
            (Grant(Role.owner, EVERYWHERE),)
            if user.is_superuser
            else parse_grants(user.all_grants())
        )
        held = highest(grants)
        if held is None or not held.at_least(ceiling):
            ceiling = Role.viewer
        if held is None or not held.at_least(Role.editor):
            # A token never sees more than its user: a viewer's token reads secrets masked.
            scopes = tuple(
                Scope(s.pattern, s.permissions - {"secrets"}) for s in scopes if s.permissions
            )
    return Principal(
        kind="token",
        id=token.id,
        tenant_id=token.tenant_id,
        role=ceiling,
        scopes=scopes,
        grants=grants,
    ), ""


class TokenCache:
    def __init__(self, *, max_age: float) -> None:
        self.max_age = max_age
        self.records: dict[str, TokenRecord] = {}
        self.hash_by_id: dict[uuid.UUID, str] = {}
        self.usage: dict[uuid.UUID, float] = {}  # token id → last use (epoch), not yet written
        self.enabled = True  # off while this replica cannot hear announcements
        self._generation = 0
        # Long polls and event streams of a token, told when it is revoked.
        self._watchers: dict[uuid.UUID, set[Revocable]] = {}
        self._flights: dict[str, tuple[int, asyncio.Future[TokenRecord]]] = {}

    # The hot path ---------------------------------------------------------------------------

    def lookup(self, secret: str) -> TokenRecord | None:
        """The cached record of this secret, if there is a fresh one."""
        record = self.records.get(codec.token_hash(secret))
        if record is None or record.fresh_until < time.monotonic():
            return None
        return record

    def admit(self, record: TokenRecord) -> Principal:
        """The record's principal, or 401; counts the use."""
        principal = record.principal
        if principal is None:
            raise Unauthenticated(record.refusal)
        now = time.time()
        if record.expires_at is not None and now >= record.expires_at:
            raise Unauthenticated("This API token has expired")
        self.usage[record.id] = now
        return principal

    # Loading ----------------------------------------------------------------------------------

    async def load(self, session: AsyncSession, secret: str) -> TokenRecord:
        """Read the token from the database (a cache miss), remembering it when allowed."""
        if not codec.well_formed(secret):
            raise Unauthenticated(INVALID)
        token_hash = codec.token_hash(secret)
        generation = self._generation
        async with across_tenants(session, "api token: found by its hash"):
            found = await repository.by_hash(session, token_hash=token_hash)
        if found is None or not hmac.compare_digest(found[0].token_hash, token_hash):
            raise Unauthenticated(INVALID)
        token, user = found
        principal, refusal = token_principal(token, user)
        record = TokenRecord(
            id=token.id,
            token_hash=token_hash,
            tenant_id=token.tenant_id,
            user_id=token.user_id,
            principal=principal,
            refusal=refusal,
            actor=f"token:{token.id}",
            expires_at=token.expires_at.timestamp() if token.expires_at else None,
            fresh_until=time.monotonic() + self.max_age,
        )
        # A revocation announced while we were reading may concern what we just read.
        if self.enabled and generation == self._generation:
            self.records[token_hash] = record
            self.hash_by_id[token.id] = token_hash
        return record

    async def fetch(
        self, sessionmaker: async_sessionmaker[AsyncSession], secret: str
    ) -> TokenRecord:
        """``load`` in a session of its own, once however many requests ask at the same time
        (a thousand watchers reconnecting with one token cost one query)."""
        if not codec.well_formed(secret):
            raise Unauthenticated(INVALID)
        token_hash = codec.token_hash(secret)
        flight = self._flights.get(token_hash)
        if flight is None or flight[0] != self._generation:
            task = asyncio.ensure_future(self._load_alone(sessionmaker, secret, token_hash))
            flight = self._flights[token_hash] = (self._generation, task)
        return await asyncio.shield(flight[1])

    async def _load_alone(
        self, sessionmaker: async_sessionmaker[AsyncSession], secret: str, token_hash: str
    ) -> TokenRecord:
        try:
            session = await open_session(sessionmaker, write=False)
            try:
                return await self.load(session, secret)
            finally:
                await session.close()
        finally:
            flight = self._flights.get(token_hash)
            if flight is not None and flight[1] is asyncio.current_task():
                del self._flights[token_hash]

    # Announcements ----------------------------------------------------------------------------

    def knows(self, token_id: uuid.UUID) -> bool:
        """Whether a record of the token is cached, or somebody waits with it."""
        return token_id in self.hash_by_id or bool(self._watchers.get(token_id))

    def forget_token(self, token_id: uuid.UUID) -> None:
        self._generation += 1
        token_hash = self.hash_by_id.pop(token_id, None)
        if token_hash is not None:
            self.records.pop(token_hash, None)
        self._wake(token_id)

    def forget_user(self, user_id: uuid.UUID) -> None:
        self._generation += 1
        for record in [r for r in self.records.values() if r.user_id == user_id]:
            self.records.pop(record.token_hash, None)
            self.hash_by_id.pop(record.id, None)
            self._wake(record.id)

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._generation += 1
        for record in [r for r in self.records.values() if r.tenant_id == tenant_id]:
            self.records.pop(record.token_hash, None)
            self.hash_by_id.pop(record.id, None)
            self._wake(record.id)

    def watch(self, token_id: uuid.UUID, watcher: Revocable) -> None:
        self._watchers.setdefault(token_id, set()).add(watcher)

    def unwatch(self, token_id: uuid.UUID, watcher: Revocable) -> None:
        watchers = self._watchers.get(token_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[token_id]

    def _wake(self, token_id: uuid.UUID) -> None:
        for watcher in list(self._watchers.get(token_id, ())):
            watcher.settle("revoked")

    def clear(self) -> None:
        self._generation += 1
        self.records.clear()
        self.hash_by_id.clear()

    # last_used_at -----------------------------------------------------------------------------

    def last_used(self, token_id: uuid.UUID, stored: datetime | None) -> datetime | None:
        """The later of the stored ``last_used_at`` and a use not yet written."""
        pending = self.usage.get(token_id)
        if pending is None:
            return stored
        seen = datetime.fromtimestamp(pending, UTC)
        return seen if stored is None or seen > stored else stored

    async def flush_usage(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Write the uses seen since the last flush (one statement, whatever the traffic)."""
        pending, self.usage = self.usage, {}
        if not pending:
            return
        used = {token_id: datetime.fromtimestamp(at, UTC) for token_id, at in pending.items()}
        try:
            session = await open_session(sessionmaker, write=True)
            try:
                async with across_tenants(session, "api tokens: last use, of every tenant"):
                    await repository.record_usage(session, used=used)
                await session.commit()
            finally:
                await session.close()
        except Exception:
            log.warning("could not record API token use; will retry", exc_info=True)
            for token_id, at in pending.items():
                self.usage[token_id] = max(at, self.usage.get(token_id, 0.0))
