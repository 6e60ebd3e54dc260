"""Analytics as people look at them (a namespace's clients and stale instances, traffic over
time, keys no one reads, a token's use), and writing what the read path and OFREP gathered in
memory (flag evaluation counts among it; the flags' views read them in ``konfig.flags``)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.analytics import repository
from konfig.analytics.evaluations import CountKey
from konfig.analytics.models import ClientInstance, FlagEvaluation, Traffic
from konfig.analytics.recorder import (
    NOT_MODIFIED,
    PUSHED,
    PUSHES,
    READS,
    RESOLVED,
    SDK,
    SEEN,
    TENANT,
    Entry,
    EntryKey,
    Recorder,
    answers,
    delivered_keys,
)
from konfig.analytics.schemas import (
    ClientRead,
    ClientsRead,
    KeyReadRow,
    KeyReads,
    Period,
    TokenNamespaceUse,
    TokenUsage,
    TrafficBucket,
    TrafficRead,
    UnreadKey,
    UnreadKeys,
)
from konfig.auth.principal import Principal
from konfig.db.session import across_tenants, open_session
from konfig.namespaces import service as namespaces
from konfig.settings import Settings
from konfig.tokens import service as tokens
from konfig.users import service as users
from konfig.users.models import Role

log = logging.getLogger("konfig.analytics")

# The namespace's current resolved config as the read path has it: its state (ETag) and the ids
# of its layers; None when it cannot be resolved.
CurrentState = Callable[[uuid.UUID, str], Awaitable[tuple[str, list[uuid.UUID]] | None]]

MINUTE, HOUR, DAY = 60, 3600, 86400
MINUTES_KEPT = 2 * HOUR  # minute rows older than this roll up into hours
HOURS_KEPT = 8 * DAY  # hour rows older than this roll up into days
COMPACT_EVERY = 600.0  # seconds between a replica's roll-ups
PERIODS: dict[str, tuple[int, int]] = {"day": (DAY, HOUR), "week": (7 * DAY, 6 * HOUR)}


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _text(raw: bytes | str | None, limit: int) -> str:
    """A header value as stored: printable text, at most ``limit`` characters."""
    if raw is None:
        return ""
    text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "?" for c in text)
    return text[:limit]


def _floor(moment: datetime, span: int) -> datetime:
    seconds = moment.timestamp()
    return _at(seconds - seconds % span)


# Writing ---------------------------------------------------------------------------------


def _rows(
    recorder: Recorder, drained: dict[EntryKey, Entry], mark_seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[Any, Any]]:
    """The clients, traffic and key-read rows of what was drained, and the marks they make."""
    clients: list[dict[str, Any]] = []
    traffic: dict[tuple[uuid.UUID, str, str, float], list[int]] = {}
    # (tenant, namespace, every key or only its flags) → the entry that delivered last.
    delivered: dict[tuple[uuid.UUID, str, bool], tuple[Entry, float]] = {}
    for (actor, namespace, who), entry in drained.items():
        tenant_id, resolved, seen = entry[TENANT], entry[RESOLVED], entry[SEEN]
        named = isinstance(who, bytes)
        pushed = entry[PUSHED]
        clients.append(
            {
                "tenant_id": tenant_id,
                "namespace": namespace,
                "actor": actor,
                "instance": _text(who, 200) if named else "",
                "address": "" if named else _text(who, 64),
                "sdk": _text(entry[SDK], 100),
                "revision": resolved.resolution.revision,
                "state": resolved.etag,
                "last_seen_at": _at(seen),
                "last_pushed_at": None if pushed is None else _at(pushed),
            }
        )
        counts = answers(entry)
        if any(counts):
            minute = seen - seen % MINUTE
            summed = traffic.setdefault((tenant_id, namespace, actor, minute), [0, 0, 0])
            for i, number in enumerate(counts):
                summed[i] += number
            every = bool(entry[READS] or entry[NOT_MODIFIED] or entry[PUSHES])
            held = delivered.get((tenant_id, namespace, every))
            if held is None or held[1] < seen:
                delivered[(tenant_id, namespace, every)] = (entry, seen)
    marks: dict[tuple[uuid.UUID, str, bool], tuple[str, float]] = {}
    keys: dict[tuple[uuid.UUID, str, str], float] = {}
    for mark, (entry, seen) in delivered.items():
        state = entry[RESOLVED].etag
        marked = recorder.marked.get(mark)
        if marked is not None and marked[0] == state and seen - marked[1] < mark_seconds:
            continue  # its keys were marked read recently enough for the unread view
        marks[mark] = (state, seen)
        for key, source in delivered_keys(entry):
            where = (mark[0], source.namespace, key)
            keys[where] = max(keys.get(where, 0.0), seen)
    traffic_rows = [
        {
            "tenant_id": tenant_id,
            "namespace": namespace,
            "actor": actor,
            "start": _at(minute),
            "span": MINUTE,
            "reads": reads,
            "not_modified": not_modified,
            "pushes": pushes,
        }
        for (tenant_id, namespace, actor, minute), (reads, not_modified, pushes) in traffic.items()
    ]
    key_rows = [
        {"tenant_id": t, "namespace": n, "key": k, "last_read_at": _at(seen)}
        for (t, n, k), seen in keys.items()
    ]
    return clients, traffic_rows, key_rows, marks


def _evaluation_rows(drained: dict[CountKey, int], now: float) -> list[dict[str, Any]]:
    """Flag evaluation rows of the counts drained, in the minute they were written."""
    start = _at(now - now % MINUTE)
    return [
        {
            "tenant_id": tenant_id,
            "namespace": namespace,
            "flag": flag,
            "variant": variant,
            "actor": actor,
            "start": start,
            "span": MINUTE,
            "count": number,
        }
        for (tenant_id, namespace, flag, variant, actor), number in drained.items()
    ]


async def flush(
    recorder: Recorder, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Write what the read path and OFREP gathered since the last flush, in one transaction;
    kept for the next flush when the database cannot take it."""
    drained = recorder.drain()
    evaluations = recorder.evaluations.drain()
    if not drained and not evaluations:
        return
    mark_seconds = min(float(HOUR), settings.analytics_unread_days * DAY / 24)
    try:
        clients, traffic, keys, marks = _rows(recorder, drained, mark_seconds)
        session = await open_session(sessionmaker, write=True)
        try:
            async with across_tenants(session, "usage analytics, of every tenant"):
                await repository.upsert_clients(session, clients)
                await repository.add_traffic(session, traffic)
                await repository.mark_keys(session, keys)
                await repository.add_rows(
                    session, FlagEvaluation, _evaluation_rows(evaluations, time.time())
                )
            await session.commit()
            recorder.written()
            recorder.evaluations.written()
        finally:
            await session.close()
    except Exception:
        log.warning("could not write usage analytics; will retry", exc_info=True)
        recorder.restore(drained)
        recorder.evaluations.restore(evaluations)
        return
    if len(recorder.marked) > 4 * recorder.max_instances:
        recorder.marked.clear()
    recorder.marked.update(marks)
    for key, entry in drained.items():
        recorder.count_namespace(key, entry)


# The state a replica's read path holds for a namespace: its ETag and its layers' ids; None
# when it holds none (then the metric compares revisions).
CachedState = Callable[[uuid.UUID, str], tuple[str, list[uuid.UUID]] | None]


async def measure_stale(
    recorder: Recorder,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    cached: CachedState | None = None,
) -> None:
    """Instances and stale instances per namespace, every replica's, for Prometheus: by state
    (as the API) for the namespaces this replica's read path holds, by revision for the rest."""
    now = time.time()
    session = await open_session(sessionmaker, write=False)
    try:
        async with across_tenants(session, "usage analytics, of every tenant"):
            rows = await repository.recent_clients(session, since=_at(now - DAY))
            states = {}
            for tenant_id, namespace, *_ in rows:
                found = cached(tenant_id, namespace) if cached is not None else None
                if found is not None:
                    states[(tenant_id, namespace)] = found
            layers = sorted({i for _, ids in states.values() for i in ids})
            changes = await repository.changed_at(session, ids=layers)
    except Exception:
        log.warning("could not count stale instances", exc_info=True)
        return
    finally:
        await session.close()
    instances: dict[str, int] = {}
    stale: dict[str, int] = {}
    horizon = _at(now - settings.analytics_stale_seconds)
    for tenant_id, namespace, held, state, revision, changed_at in rows:
        instances[namespace] = instances.get(namespace, 0) + 1
        found = states.get((tenant_id, namespace))
        if found is None:
            behind = held < revision
        else:
            current, ids = found
            behind = state != current
            changed_at = max([changed_at, *(changes[i] for i in ids if i in changes)])
        if behind and changed_at <= horizon:
            stale[namespace] = stale.get(namespace, 0) + 1
    recorder.instances, recorder.stale = instances, stale


async def _roll_up(
    sessionmaker: async_sessionmaker[AsyncSession],
    model: type[Traffic] | type[FlagEvaluation],
    *,
    span: int,
    into: int,
    before: datetime,
) -> None:
    """Sum ``model``'s rows of ``span`` seconds starting before ``before`` into rows of
    ``into`` seconds, in one transaction."""
    names, counters = repository.ROLLED_UP[model]
    session = await open_session(sessionmaker, write=True)
    try:
        async with across_tenants(session, "usage analytics roll-up, of every tenant"):
            rows = await repository.rows_to_roll_up(session, model, span=span, before=before)
            if not rows:
                return
            summed: dict[tuple[Any, ...], list[int]] = {}
            for _, start, *values in rows:
                key = (_floor(start, into), *values[: len(names)])
                total = summed.setdefault(key, [0] * len(counters))
                for i, number in enumerate(values[len(names) :]):
                    total[i] += number
            ids = [row[0] for row in rows]
            if await repository.delete_rows(session, model, ids) != len(ids):
                await session.rollback()
                return
            await repository.add_rows(
                session,
                model,
                [
                    {
                        "start": start,
                        "span": into,
                        **dict(zip(names, named, strict=True)),
                        **dict(zip(counters, total, strict=True)),
                    }
                    for (start, *named), total in summed.items()
                ],
            )
        await session.commit()
    finally:
        await session.close()


async def compact(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, retention_days: float
) -> None:
    """Roll minute rows (traffic and flag evaluations) up into hours and hours into days, then
    forget what retention does not keep. A replica racing another for the same rows finds fewer
    to delete than it read, and rolls its transaction back (the other has rolled them up)."""
    for span, kept, into in ((MINUTE, MINUTES_KEPT, HOUR), (HOUR, HOURS_KEPT, DAY)):
        before = _floor(now - timedelta(seconds=kept), into)
        for model in (Traffic, FlagEvaluation):
            await _roll_up(sessionmaker, model, span=span, into=into, before=before)
    session = await open_session(sessionmaker, write=True)
    try:
        async with across_tenants(session, "usage analytics retention, of every tenant"):
            await repository.forget_before(session, before=now - timedelta(days=retention_days))
        await session.commit()
    finally:
        await session.close()


async def compact_now_and_then(
    recorder: Recorder, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """``compact`` at most every ten minutes per replica."""
    now = time.time()
    if now - recorder.compacted_at < COMPACT_EVERY:
        return
    recorder.compacted_at = now
    try:
        await compact(sessionmaker, now=_at(now), retention_days=settings.analytics_retention_days)
    except Exception:
        log.warning("could not roll up usage analytics; will retry", exc_info=True)


# Reading ---------------------------------------------------------------------------------


def _pending_clients(
    recorder: Recorder, tenant_id: uuid.UUID, namespace: str
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """This replica's clients of the namespace not written yet, as the rows they will be."""
    found = {}
    for (actor, _, who), entry in recorder.pending(tenant_id, namespace):
        named = isinstance(who, bytes)
        instance, address = (_text(who, 200), "") if named else ("", _text(who, 64))
        pushed = entry[PUSHED]
        found[(actor, instance, address)] = {
            "actor": actor,
            "instance": instance,
            "address": address,
            "sdk": _text(entry[SDK], 100),
            "revision": entry[RESOLVED].resolution.revision,
            "state": entry[RESOLVED].etag,
            "last_seen_at": _at(entry[SEEN]),
            "last_pushed_at": None if pushed is None else _at(pushed),
        }
    return found


def _as_row(client: ClientInstance) -> dict[str, Any]:
    return {
        "actor": client.actor,
        "instance": client.instance,
        "address": client.address,
        "sdk": client.sdk,
        "revision": client.revision,
        "state": client.state,
        "last_seen_at": client.last_seen_at,
        "last_pushed_at": client.last_pushed_at,
    }


async def clients(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    recorder: Recorder,
    current: CurrentState,
    stale_seconds: float,
    window_hours: float,
) -> ClientsRead:
    """The namespace's instances, the state each holds, and the stale ones."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    tenant_id = namespace.tenant_id
    found = await current(tenant_id, namespace.name)
    current_state, layer_ids = found if found is not None else (None, [])
    now = datetime.now(UTC)
    rows = {
        (c.actor, c.instance, c.address): _as_row(c)
        for c in await repository.clients(
            session,
            tenant_id=tenant_id,
            namespace=namespace.name,
            since=now - timedelta(hours=window_hours),
        )
    }
    for key, pending in _pending_clients(recorder, tenant_id, namespace.name).items():
        written = rows.get(key)
        if written is None or written["last_seen_at"] <= pending["last_seen_at"]:
            if written is not None and pending["last_pushed_at"] is None:
                pending["last_pushed_at"] = written["last_pushed_at"]
            rows[key] = pending
    changed_at = await repository.last_change(
        session, tenant_id=tenant_id, namespace_ids=[namespace.id, *layer_ids]
    )
    oldest = min((row["revision"] for row in rows.values()), default=namespace.revision)
    times = await repository.revision_times(
        session, tenant_id=tenant_id, namespace_id=namespace.id, after=oldest
    )
    stale_after = timedelta(seconds=stale_seconds)
    items = []
    for row in sorted(rows.values(), key=lambda r: (r["instance"] or r["address"], r["actor"])):
        if current_state is not None:
            holds_current = row["state"] == current_state
        else:
            holds_current = row["revision"] == namespace.revision
        behind_since = None
        if not holds_current:
            behind_since = times.get(row["revision"] + 1, changed_at)
        stale = behind_since is not None and now - behind_since >= stale_after
        items.append(
            ClientRead(
                instance=row["instance"] or None,
                address=row["address"] or None,
                actor=row["actor"],
                sdk=row["sdk"],
                revision=row["revision"],
                current=holds_current,
                stale=stale,
                behind_since=behind_since,
                last_seen_at=row["last_seen_at"],
                last_pushed_at=row["last_pushed_at"],
            )
        )
    stale_clients = [item for item in items if item.stale]
    on_current = sum(1 for item in items if item.current)
    behind = min((c.behind_since for c in stale_clients if c.behind_since), default=None)
    headline = f"{on_current} of {len(items)} instances on revision {namespace.revision}"
    if stale_clients and behind is not None:
        headline += f"; {len(stale_clients)} behind since {behind:%Y-%m-%d %H:%M} UTC"
    return ClientsRead(
        namespace=namespace.name,
        revision=namespace.revision,
        changed_at=changed_at,
        instances=len(items),
        on_current=on_current,
        stale=len(stale_clients),
        behind_since=behind,
        headline=headline,
        stale_clients=stale_clients,
        items=items,
    )


def _buckets(rows: Sequence[Any], period: Period, now: datetime) -> TrafficRead:
    length, size = PERIODS[period]
    start = _floor(now - timedelta(seconds=length - size), size)
    count = length // size
    sums = [[0, 0, 0] for _ in range(count)]
    for at, _, reads, not_modified, pushes in rows:
        index = int((at.timestamp() - start.timestamp()) // size)
        if 0 <= index < count:
            for i, number in enumerate((reads, not_modified, pushes)):
                sums[index][i] += int(number)
    buckets = [
        TrafficBucket(start=start + timedelta(seconds=i * size), reads=r, not_modified=m, pushes=p)
        for i, (r, m, p) in enumerate(sums)
    ]
    return TrafficRead(
        period=period,
        bucket_seconds=size,
        buckets=buckets,
        totals=TrafficBucket(
            start=start,
            reads=sum(b.reads for b in buckets),
            not_modified=sum(b.not_modified for b in buckets),
            pushes=sum(b.pushes for b in buckets),
        ),
    )


def _pending_traffic(
    recorder: Recorder, tenant_id: uuid.UUID, namespace: str | None, actor: str | None
) -> list[tuple[datetime, str, int, int, int]]:
    return [
        (_at(entry[SEEN]), name, *answers(entry))
        for (who, name, _), entry in recorder.unwritten()
        if entry[TENANT] == tenant_id
        and (namespace is None or name == namespace)
        and (actor is None or who == actor)
    ]


async def traffic(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    recorder: Recorder,
    period: Period,
) -> TrafficRead:
    """Reads, 304s and pushes of the namespace over the last day or week (all replicas)."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    now = datetime.now(UTC)
    rows = await repository.traffic(
        session,
        tenant_id=namespace.tenant_id,
        namespace=namespace.name,
        since=now - timedelta(seconds=PERIODS[period][0]),
    )
    rows += _pending_traffic(recorder, namespace.tenant_id, namespace.name, None)
    return _buckets(rows, period, now)


async def key_reads(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    recorder: Recorder,
    unread_days: float,
) -> KeyReads:
    """The namespace's own keys, when a resolved read last delivered each, and the unread."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    tenant_id = namespace.tenant_id
    read = await repository.key_reads(session, tenant_id=tenant_id, namespace=namespace.name)
    for (name, key), at in _unwritten_reads(recorder, tenant_id).items():  # not written yet
        if name == namespace.name and (key not in read or read[key] < at):
            read[key] = at
    horizon = datetime.now(UTC) - timedelta(days=unread_days)
    items = []
    for key, created_at in await repository.entries(
        session, tenant_id=tenant_id, namespace_id=namespace.id
    ):
        last = read.get(key)
        unread = created_at < horizon and (last is None or last < horizon)
        items.append(KeyReadRow(key=key, last_read_at=last, unread=unread))
    return KeyReads(namespace=namespace.name, unread_days=unread_days, items=items)


def _unwritten_reads(recorder: Recorder, tenant_id: uuid.UUID) -> dict[tuple[str, str], datetime]:
    """When this replica last delivered each key (namespace, key), not written yet."""
    read: dict[tuple[str, str], datetime] = {}
    for _, entry in recorder.unwritten():
        if entry[TENANT] != tenant_id:
            continue
        at = _at(entry[SEEN])
        for key, source in delivered_keys(entry):
            where = (source.namespace, key)
            if where not in read or read[where] < at:
                read[where] = at
    return read


async def unread_keys(
    session: AsyncSession, *, principal: Principal, recorder: Recorder, unread_days: float
) -> UnreadKeys:
    """Every key of the tenant (in namespaces the caller may read) that no resolved read
    delivered for ``unread_days``: candidates for clean-up, by namespace and key."""
    principal.require(Role.viewer)
    tenant_id = principal.tenant_id
    horizon = datetime.now(UTC) - timedelta(days=unread_days)
    read = await repository.tenant_key_reads(session, tenant_id=tenant_id)
    for where, at in _unwritten_reads(recorder, tenant_id).items():
        if where not in read or read[where] < at:
            read[where] = at
    items = []
    for namespace, key in await repository.tenant_entries(
        session, tenant_id=tenant_id, created_before=horizon
    ):
        last = read.get((namespace, key))
        if (last is None or last < horizon) and principal.allows(namespace, "read"):
            items.append(UnreadKey(namespace=namespace, key=key, last_read_at=last))
    return UnreadKeys(unread_days=unread_days, items=items)


async def actor_names(
    session: AsyncSession, *, principal: Principal, actors: Sequence[str]
) -> dict[str, str]:
    """How to show the credentials clients read with: ``token <name>`` for API tokens, the
    email for people's logins (``konfig.users.service.display_names``)."""
    names = await users.display_names(session, principal=principal, actors=list(actors))
    ids = []
    for actor in set(actors):
        kind, _, raw = actor.partition(":")
        if kind == "token":
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                continue
    found = await repository.token_names(session, tenant_id=principal.tenant_id, token_ids=ids)
    names.update({f"token:{token_id}": f"token {name}" for token_id, name in found.items()})
    return names


async def token_usage(
    session: AsyncSession,
    *,
    principal: Principal,
    token_id: uuid.UUID,
    recorder: Recorder,
    period: Period,
) -> TokenUsage:
    """A token's requests over time, the namespaces it read, and when it was last used."""
    token = await tokens.get_token(session, principal=principal, token_id=token_id)
    actor = f"token:{token.id}"
    tenant_id = token.tenant_id
    now = datetime.now(UTC)
    rows = await repository.traffic(
        session, tenant_id=tenant_id, actor=actor, since=now - timedelta(seconds=PERIODS[period][0])
    )
    rows += _pending_traffic(recorder, tenant_id, None, actor)
    uses: dict[str, list[Any]] = {}
    for _, namespace, reads, not_modified, pushes in rows:
        use = uses.setdefault(namespace, [0, set(), None])
        use[0] += int(reads) + int(not_modified) + int(pushes)
    seen: list[tuple[str, str, datetime]] = [
        (c.namespace, c.instance or c.address, c.last_seen_at)
        for c in await repository.clients_of_actor(session, tenant_id=tenant_id, actor=actor)
    ]
    for (who, namespace, instance), entry in recorder.unwritten():
        if who == actor and entry[TENANT] == tenant_id:
            seen.append((namespace, _text(instance, 200), _at(entry[SEEN])))
    for namespace, instance, at in seen:
        use = uses.setdefault(namespace, [0, set(), None])
        use[1].add(instance)
        use[2] = at if use[2] is None or use[2] < at else use[2]
    last_used = max((use[2] for use in uses.values() if use[2] is not None), default=None)
    return TokenUsage(
        token_id=str(token.id),
        last_used_at=last_used,
        namespaces=[
            TokenNamespaceUse(
                namespace=namespace, requests=use[0], instances=len(use[1]), last_read_at=use[2]
            )
            for namespace, use in sorted(uses.items())
        ],
        traffic=_buckets(rows, period, now),
    )
