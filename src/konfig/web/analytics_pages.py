"""A namespace's clients in the UI: the headline ("27 of 30 instances on revision 18; 3 behind
since …"), the stale instances, every instance with the revision it holds, the traffic of the
last day or week as a server-rendered SVG chart, and the keys no read delivered lately."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import Response

from konfig.analytics import service as analytics
from konfig.analytics.router import current_state
from konfig.analytics.schemas import Period, TrafficRead
from konfig.state import state_of
from konfig.tokens import service as tokens
from konfig.web.history_pages import namespace_context, namespace_of
from konfig.web.rendering import page
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn

router = APIRouter(route_class=UIRoute)

KINDS = ("reads", "not_modified", "pushes")


@dataclass(frozen=True, slots=True)
class Bar:
    """One bucket of the chart: where it starts, its x, and a stacked segment per kind."""

    start: datetime
    x: int
    segments: list[tuple[str, int, int, int]]  # kind, y, height, count


def period_text(days: float) -> str:
    """``30 days``, ``6 hours``, ``90 seconds``: the unread period as people read it."""
    seconds = days * 86400
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = round(seconds / length, 1)
            shown = f"{count:g}"
            return f"{shown} {unit}{'' if shown == '1' else 's'}"
    shown = f"{round(seconds, 1):g}"
    return f"{shown} second{'' if shown == '1' else 's'}"


def chart(traffic: TrafficRead) -> list[Bar]:
    """Stacked bars, 100 units high at the busiest bucket, 10 units wide each."""
    busiest = max((b.reads + b.not_modified + b.pushes for b in traffic.buckets), default=0) or 1
    bars = []
    for i, bucket in enumerate(traffic.buckets):
        y, segments = 100, []
        for kind in KINDS:
            count = getattr(bucket, kind)
            height = max(1, round(100 * count / busiest)) if count else 0
            y -= height
            segments.append((kind, y, height, count))
        bars.append(Bar(bucket.start, i * 10, segments))
    return bars


@router.get("/namespaces/{namespace_id}/clients")
async def clients_page(visitor: SignedIn, namespace_id: uuid.UUID, period: str = "day") -> Response:
    """Who reads the namespace, which revision each holds, the stale ones; traffic; unread keys."""
    namespace = await namespace_of(visitor, namespace_id)
    state = state_of(visitor.request)
    recorder = state.delivery.analytics
    chosen: Period = "week" if period == "week" else "day"
    session, principal = visitor.session, visitor.principal
    clients = await analytics.clients(
        session,
        principal=principal,
        recorder=recorder,
        namespace_id=namespace_id,
        current=current_state(visitor.request),
        stale_seconds=state.settings.analytics_stale_seconds,
        window_hours=24,
    )
    traffic = await analytics.traffic(
        session, principal=principal, recorder=recorder, namespace_id=namespace_id, period=chosen
    )
    keys = await analytics.key_reads(
        session,
        principal=principal,
        recorder=recorder,
        namespace_id=namespace_id,
        unread_days=state.settings.analytics_unread_days,
    )
    people = await analytics.actor_names(
        session, principal=principal, actors=[c.actor for c in clients.items]
    )
    return page(
        visitor.request,
        "clients.html",
        visitor,
        clients=clients,
        people=people,
        unread_for=period_text(keys.unread_days),
        traffic=traffic,
        bars=chart(traffic),
        keys=keys,
        period=chosen,
        flush_seconds=state.settings.analytics_flush_seconds,
        **namespace_context(namespace),
    )


@router.get("/admin/tokens/{token_id}/usage")
async def token_usage_page(visitor: SignedIn, token_id: uuid.UUID, period: str = "day") -> Response:
    """A token's requests over time, the namespaces it read, and when it was last used."""
    chosen: Period = "week" if period == "week" else "day"
    usage = await analytics.token_usage(
        visitor.session,
        principal=visitor.principal,
        token_id=token_id,
        recorder=state_of(visitor.request).delivery.analytics,
        period=chosen,
    )
    token = await tokens.get_token(visitor.session, principal=visitor.principal, token_id=token_id)
    return page(
        visitor.request,
        "token_usage.html",
        visitor,
        token=token,
        usage=usage,
        bars=chart(usage.traffic),
        period=chosen,
    )


@router.get("/unread-keys")
async def unread_keys_page(visitor: SignedIn) -> Response:
    """Every key of the organisation (that you may read) no read delivered lately."""
    state = state_of(visitor.request)
    days = state.settings.analytics_unread_days
    unread = await analytics.unread_keys(
        visitor.session,
        principal=visitor.principal,
        recorder=state.delivery.analytics,
        unread_days=days,
    )
    return page(
        visitor.request, "unread_keys.html", visitor, unread=unread, unread_for=period_text(days)
    )
