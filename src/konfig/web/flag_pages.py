"""Feature flags in the UI: a namespace's flags, and a flag's page with its variants, rollout
weights, targeting (a JSON editor checked by the server), kill switch and evaluation counts."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from konfig.configs import service as configs
from konfig.configs.schemas import ConfigCreate, ConfigPatch
from konfig.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from konfig.flags import service as flags
from konfig.flags.schemas import FlagEvaluations, FlagRead
from konfig.revisions.writer import Proposed
from konfig.state import state_of
from konfig.users.models import Role
from konfig.web.change_pages import proposed
from konfig.web.forms import text
from konfig.web.history_pages import namespace_context, namespace_of
from konfig.web.namespace_pages import policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

CHART_HOURS = 24
NEW_FLAG = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": {"fractional": [["on", 10], ["off", 90]]},
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One hour of the chart: its label, and per variant a stacked segment (y, height)."""

    hour: datetime
    x: int
    segments: list[tuple[str, int, int, int]]  # variant, y, height, count
    total: int


def _unwritten(visitor: Visitor) -> dict[Any, int]:
    return state_of(visitor.request).delivery.analytics.evaluations.unwritten()


async def _flags(visitor: Visitor, namespace_id: uuid.UUID) -> list[FlagRead]:
    return await flags.list_flags(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace_id,
        pending=_unwritten(visitor),
        stale_days=state_of(visitor.request).settings.flag_stale_days,
    )


def rollout(targeting: Any) -> list[tuple[str, int]] | None:
    """The buckets of a targeting that is one ``fractional`` of literal [variant, weight]s."""
    if not isinstance(targeting, dict) or list(targeting) != ["fractional"]:
        return None
    buckets = targeting["fractional"]
    if not isinstance(buckets, list) or not all(
        isinstance(b, list) and len(b) == 2 and isinstance(b[0], str) and isinstance(b[1], int)
        for b in buckets
    ):
        return None
    return [(b[0], b[1]) for b in buckets]


def chart(evaluations: FlagEvaluations, now: datetime) -> list[Bar]:
    """The last day, hour by hour, as stacked bars 100 units high at the busiest hour."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=CHART_HOURS - 1)
    by_hour: dict[datetime, dict[str, int]] = {}
    for row in evaluations.hours:
        by_hour.setdefault(row.hour, {})[row.variant] = row.count
    busiest = max((sum(v.values()) for v in by_hour.values()), default=0) or 1
    bars = []
    for i in range(CHART_HOURS):
        hour = start + timedelta(hours=i)
        counts = by_hour.get(hour, {})
        y, segments = 100, []
        for variant, count in sorted(counts.items()):
            height = max(1, round(100 * count / busiest)) if count else 0
            y -= height
            segments.append((variant, y, height, count))
        bars.append(Bar(hour, i * 10, segments, sum(counts.values())))
    return bars


@router.get("/namespaces/{namespace_id}/flags")
async def flags_page(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """The namespace's flags: state, default, evaluations, last evaluated, stale."""
    namespace = await namespace_of(visitor, namespace_id)
    return page(
        visitor.request,
        "flags.html",
        visitor,
        flags=await _flags(visitor, namespace_id),
        new_key="",
        new_definition=json.dumps(NEW_FLAG, indent=2),
        errors={},
        **namespace_context(namespace),
    )


@router.post("/namespaces/{namespace_id}/flags")
async def add_flag(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Add a flag from its JSON definition; problems come back next to the field."""
    form = await visitor.request.form()
    key, definition = text(form, "key").strip(), text(form, "definition")
    errors: dict[str, str] = {}
    status_code = 422
    try:
        value = json.loads(definition)
    except json.JSONDecodeError as exc:
        errors["definition"] = f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    else:
        try:
            payload = ConfigCreate(key=key, value=value, value_type="flag")
            await configs.create(
                visitor.session,
                writer=state_of(visitor.request).entry_writer,
                principal=visitor.principal,
                namespace_id=namespace_id,
                payload=payload,
                message=None,
                if_none_match=None,
            )
        except Proposed as done:
            return proposed(visitor, done.proposal)
        except ValidationFailed as exc:
            errors["definition"] = exc.message
        except Conflict:
            status_code = 409
            errors["key"] = f"{key} exists already: choose another key, or open that flag."
        except ValueError as exc:  # the key's own shape (pydantic)
            errors["key"] = str(exc).splitlines()[-1] if str(exc) else "Not a valid key."
        else:
            return redirect(
                visitor.request,
                f"/ui/namespaces/{namespace_id}/flags/{key}",
                flash=f"Added the flag {key}.",
            )
    await visitor.restart()
    namespace = await namespace_of(visitor, namespace_id)
    return page(
        visitor.request,
        "flags.html",
        visitor,
        status_code=status_code,
        flags=await _flags(visitor, namespace_id),
        new_key=key,
        new_definition=definition,
        errors=errors,
        **namespace_context(namespace),
    )


async def _flag_page(
    visitor: Visitor,
    namespace_id: uuid.UUID,
    key: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    targeting_text: str | None = None,
) -> Response:
    namespace = await namespace_of(visitor, namespace_id)
    found = {f.key: f for f in await _flags(visitor, namespace_id)}
    flag = found.get(key)
    if flag is None:
        raise NotFound(f"no flag {key} in namespace {namespace.name}")
    entry = await configs.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id, key=key
    )
    evaluations = await flags.evaluations(
        visitor.session,
        principal=visitor.principal,
        namespace_id=namespace_id,
        key=key,
        hours=CHART_HOURS,
        pending=_unwritten(visitor),
    )
    shown = json.dumps(flag.targeting, indent=2) if flag.targeting is not None else ""
    return page(
        visitor.request,
        "flag.html",
        visitor,
        status_code=status_code,
        flag=flag,
        version=entry.version,
        buckets=rollout(flag.targeting),
        targeting_text=shown if targeting_text is None else targeting_text,
        evaluations=evaluations,
        bars=chart(evaluations, datetime.now(UTC)),
        errors=errors or {},
        **namespace_context(namespace),
    )


@router.get("/namespaces/{namespace_id}/flags/{key}")
async def flag_page(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """One flag: variants, rollout, targeting, kill switch, evaluation counts."""
    return await _flag_page(visitor, namespace_id, key)


async def _save(
    visitor: Visitor, namespace_id: uuid.UUID, key: str, change: dict[str, Any], version: str
) -> int:
    """Write the flag with ``change`` applied (to the version the page showed); its revision."""
    entry = await configs.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id, key=key
    )
    definition = {**configs.read_value(policy_of(visitor), entry), **change}
    definition = {k: v for k, v in definition.items() if v is not None}
    saved = await configs.patch(
        visitor.session,
        writer=state_of(visitor.request).entry_writer,
        principal=visitor.principal,
        namespace_id=namespace_id,
        key=key,
        payload=ConfigPatch(value=definition),
        message=None,
        if_match=configs.etag(int(version)) if version.isdigit() else None,
    )
    return saved.revision


async def _apply(
    visitor: Visitor,
    namespace_id: uuid.UUID,
    key: str,
    change: dict[str, Any],
    done: str,
    field: str,
    targeting_text: str | None = None,
) -> Response:
    visitor.principal.require(Role.editor)  # a viewer is refused before anything is read
    version = text(await visitor.request.form(), "version")
    try:
        revision = await _save(visitor, namespace_id, key, change, version)
    except Proposed as proposal:
        return proposed(visitor, proposal.proposal)
    except ValidationFailed as exc:
        problem, status_code = exc.message, 422
    except PreconditionFailed:
        problem, status_code = (
            f"Someone else changed {key} since you opened it: look at it again, then redo "
            "your change.",
            412,
        )
    else:
        return redirect(
            visitor.request,
            f"/ui/namespaces/{namespace_id}/flags/{key}",
            flash=f"{done} (revision {revision}).",
        )
    await visitor.restart()
    return await _flag_page(
        visitor,
        namespace_id,
        key,
        status_code=status_code,
        errors={field: problem},
        targeting_text=targeting_text,
    )


@router.post("/namespaces/{namespace_id}/flags/{key}/state")
async def switch(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """The kill switch: DISABLED serves the default variant everywhere at once."""
    state = text(await visitor.request.form(), "state")
    if state not in ("ENABLED", "DISABLED"):
        state = "DISABLED"
    done = f"{key} is on" if state == "ENABLED" else f"{key} is off: it serves its default"
    return await _apply(visitor, namespace_id, key, {"state": state}, done, "state")


@router.post("/namespaces/{namespace_id}/flags/{key}/weights")
async def weights(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """New rollout weights for a flag whose targeting is one fractional split."""
    form = await visitor.request.form()
    buckets = []
    for name in form.getlist("variant"):
        raw = text(form, f"weight_{name}").strip()
        buckets.append([str(name), int(raw) if raw.lstrip("-").isdigit() else raw])
    change = {"targeting": {"fractional": buckets}}
    return await _apply(
        visitor, namespace_id, key, change, f"Saved the rollout of {key}", "weights"
    )


@router.post("/namespaces/{namespace_id}/flags/{key}/targeting")
async def targeting(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """New targeting rules (JsonLogic), checked by the server; empty removes them."""
    raw = text(await visitor.request.form(), "targeting")
    if raw.strip():
        try:
            rules = json.loads(raw)
        except json.JSONDecodeError as exc:
            await visitor.restart()
            problem = f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            return await _flag_page(
                visitor,
                namespace_id,
                key,
                status_code=422,
                errors={"targeting": problem},
                targeting_text=raw,
            )
    else:
        rules = None
    done = f"Saved the targeting of {key}"
    change = {"targeting": rules}
    return await _apply(visitor, namespace_id, key, change, done, "targeting", raw)
