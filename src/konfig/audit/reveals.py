"""Secrets shown on the read path, audited in aggregate: never one row per request.

Each process counts, in memory, the answers that showed secret values, per tenant, principal,
namespace and UTC day, and writes them every ``KONFIG_TOKEN_USAGE_FLUSH_SECONDS`` (and at
shutdown), like API tokens' ``last_used_at``. What the audit log gets:

- ``config.reveal.first``: once per principal and namespace, the first read that showed its
  secrets (dated when it happened, naming the secret keys);
- ``config.reveal.daily``: one row per principal, namespace and day (``target`` is the date),
  whose ``summary.count`` is the number of such answers that day. Replicas add to the same row
  (it is locked while updated on PostgreSQL and MariaDB); should two replicas create a day's
  row at the very same moment, the day has two rows whose counts add up.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.audit import repository
from konfig.audit.context import AuditContext
from konfig.audit.service import event_row, insert_row
from konfig.db.session import bind_tenant, open_session

log = logging.getLogger("konfig.audit")

FIRST = "config.reveal.first"
DAILY = "config.reveal.daily"
_KEYS_LISTED = 100
_DAY = 86400


@dataclass(slots=True)
class Tally:
    count: int
    first: float  # epoch seconds
    last: float
    keys: set[str] = field(default_factory=set)


# (tenant, actor, namespace, day number since the epoch)
TallyKey = tuple[uuid.UUID, str, str, int]


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class RevealCounter:
    def __init__(self) -> None:
        self.pending: dict[TallyKey, Tally] = {}
        # (tenant, actor, namespace) whose first read is in the log: not looked up again.
        self.first_recorded: set[tuple[uuid.UUID, str, str]] = set()

    def count(self, tenant_id: uuid.UUID, actor: str, namespace: str, keys: Iterable[str]) -> None:
        """One answer showed these secret keys (the hot path: a dict update)."""
        now = time.time()
        tally_key = (tenant_id, actor, namespace, int(now // _DAY))
        tally = self.pending.get(tally_key)
        if tally is None:
            self.pending[tally_key] = Tally(1, now, now, set(keys))
            return
        tally.count += 1
        tally.last = now
        tally.keys.update(keys)

    async def flush(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Write the counts gathered since the last flush, one transaction per tenant; what
        fails to be written is kept for the next flush."""
        pending, self.pending = self.pending, {}
        by_tenant: dict[uuid.UUID, list[tuple[TallyKey, Tally]]] = {}
        for tally_key, tally in pending.items():
            by_tenant.setdefault(tally_key[0], []).append((tally_key, tally))
        for tenant_id, tallies in by_tenant.items():
            try:
                session = await open_session(sessionmaker, write=True)
                try:
                    await bind_tenant(session, tenant_id)
                    for tally_key, tally in tallies:
                        first_known = tally_key[:3] in self.first_recorded
                        await _write(session, tally_key, tally, first_known=first_known)
                    await session.commit()
                    self.first_recorded.update(tally_key[:3] for tally_key, _ in tallies)
                finally:
                    await session.close()
            except Exception:
                log.warning("could not record reads of secrets; will retry", exc_info=True)
                for tally_key, tally in tallies:
                    self._merge(tally_key, tally)

    def _merge(self, tally_key: TallyKey, tally: Tally) -> None:
        held = self.pending.get(tally_key)
        if held is None:
            self.pending[tally_key] = tally
            return
        held.count += tally.count
        held.first = min(held.first, tally.first)
        held.last = max(held.last, tally.last)
        held.keys |= tally.keys


async def _write(
    session: AsyncSession, tally_key: TallyKey, tally: Tally, *, first_known: bool
) -> None:
    tenant_id, actor, namespace, _ = tally_key
    context = AuditContext(actor=actor, tenant_id=tenant_id)
    keys = sorted(tally.keys)[:_KEYS_LISTED]
    first = first_known or await repository.find_event(
        session, tenant_id=tenant_id, action=FIRST, actor=actor, namespace=namespace
    )
    if not first:
        row = event_row(
            action=FIRST,
            target=namespace,
            summary={"via": "read path", "keys": keys},
            target_type="resolved",
            namespace=namespace,
            context=context,
        )
        row["created_at"] = _at(tally.first)
        await insert_row(session, row)
    day = _at(tally.first).date().isoformat()
    daily = await repository.find_event(
        session,
        tenant_id=tenant_id,
        action=DAILY,
        actor=actor,
        namespace=namespace,
        target=day,
        for_update=True,
    )
    if daily is None:
        row = event_row(
            action=DAILY,
            target=day,
            summary={
                "via": "read path",
                "count": tally.count,
                "keys": keys,
                "last_read_at": _at(tally.last).isoformat(),
            },
            target_type="resolved",
            namespace=namespace,
            context=context,
        )
        row["created_at"] = _at(tally.first)
        await insert_row(session, row)
        return
    event_id, summary = daily
    known = summary.get("keys")
    merged_keys = sorted(set(known if isinstance(known, list) else []) | set(keys))
    count = summary.get("count")
    summary.update(
        count=(count if isinstance(count, int) else 0) + tally.count,
        keys=merged_keys[:_KEYS_LISTED],
        last_read_at=_at(tally.last).isoformat(),
    )
    await repository.set_summary(session, tenant_id=tenant_id, event_id=event_id, summary=summary)
