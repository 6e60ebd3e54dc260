"""``insert_rows``: the bulk path of big writes, on each backend, read back as SQLAlchemy sees it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy import Table, select

from konfig.audit.models import AuditEvent
from konfig.db.bulk import insert_rows
from konfig.db.engine import make_engine, make_sessionmaker
from konfig.db.session import open_session
from tests.conftest import Backend

EVENTS = cast(Table, AuditEvent.__table__)


async def test_rows_shared_values_and_nulls_arrive_as_written(backend: Backend) -> None:
    engine = make_engine(backend.superuser_url)  # NULL-tenant rows: the platform's own
    session = await open_session(make_sessionmaker(engine), write=True)
    try:
        when = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=UTC)
        ids = [uuid.uuid4() for _ in range(3)]
        rows = [
            {
                "id": ids[0],
                "action": "test.bulk",
                "target_type": "t",
                "target": "a",
                "summary": {"n": 1, "nested": [1, "two", None]},
            },
            {"id": ids[1], "action": "test.bulk", "target_type": "t", "target": "b", "summary": {}},
            {"id": ids[2], "action": "test.bulk", "target_type": "t", "target": "c", "summary": {}},
        ]
        shared = {
            "actor": "bulk-test",
            "created_at": when,
            "namespace": None,
            "request_id": "r",
            "client": "",
        }
        await insert_rows(session, EVENTS, rows, shared=shared)  # tenant_id: not given, NULL
        found = (await session.execute(select(AuditEvent).where(AuditEvent.id.in_(ids)))).scalars()
        by_target = {event.target: event for event in found}
        assert sorted(by_target) == ["a", "b", "c"]
        first = by_target["a"]
        assert first.id == ids[0] and first.tenant_id is None and first.namespace is None
        assert first.summary == {"n": 1, "nested": [1, "two", None]}
        assert first.created_at == when and first.actor == "bulk-test"
        assert by_target["b"].summary == {}

        with pytest.raises(ValueError, match=r"no value for audit_events\.action"):
            await insert_rows(session, EVENTS, [{"id": uuid.uuid4()}], shared=shared)
    finally:
        await session.rollback()
        await session.close()
        await engine.dispose()
