"""Single-entry writes committed together: each keeps its own revision, answer and error.

Writes are made to wait behind a transaction that holds the namespace (SQLite: the write lock;
PostgreSQL: the namespace row), so that the ones sent meanwhile are committed as one batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from konfig.db.engine import make_engine
from tests.conftest import Account, add_user, assert_error, register
from tests.support.group_commit import held, queued, taken_up
from tests.support.revisions import API, new_namespace, snapshot


def entry(ns: str, key: str = "") -> str:
    return f"{API}/namespaces/{ns}/configs" + (f"/{key}" if key else "")


async def test_writes_sent_together_commit_together_each_with_its_revision(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ns = await new_namespace(client, owner)
    writer = app.state.entry_writer
    first = await client.put(entry(ns, "a"), headers=owner.headers, json={"value": "a0"})
    assert first.status_code == 201
    before = writer.batches

    async with held(app, owner, ns):
        # The first waits for the lock inside a batch of its own; the rest queue behind it.
        tasks = [
            asyncio.create_task(
                client.put(entry(ns, "a"), headers=owner.headers, json={"value": "a1"})
            )
        ]
        await taken_up(app.state.entry_writer)
        sends = [
            client.put(entry(ns, "a"), headers=owner.headers, json={"value": "a2"}),
            client.put(entry(ns, "b"), headers=owner.headers, json={"value": "b1"}),
            client.put(entry(ns, "a"), headers=owner.headers, json={"value": "a3"}),
            client.delete(entry(ns, "b"), headers=owner.headers),
            client.put(entry(ns, "b"), headers=owner.headers, json={"value": "b2"}),
            client.patch(entry(ns, "a"), headers=owner.headers, json={"description": "patched"}),
            client.put(
                entry(ns, "a"),
                headers=owner.headers,
                json={"value": "a3", "description": "patched"},
            ),
        ]
        tasks += [asyncio.create_task(send) for send in sends]
        await queued(tasks, writer)
    answers = [await t for t in tasks]

    assert writer.batches == before + 2  # one for the first, one for the seven behind it
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 201, 200, 204, 201, 200, 200], [a.text for a in answers]
    # Each change is a revision of its own, in the order sent; the unchanged last write is none.
    revisions = [a.json()["revision"] for i, a in enumerate(answers) if i != 4]
    assert revisions == [2, 3, 4, 5, 7, 8, 8]
    assert answers[6].json() == answers[7].json()

    history = await client.get(f"{entry(ns, 'a')}/history", headers=owner.headers)
    assert [(v["version"], v["value"]) for v in history.json()["items"]] == [
        (5, "a3"),
        (4, "a3"),
        (3, "a2"),
        (2, "a1"),
        (1, "a0"),
    ]
    b_history = await client.get(f"{entry(ns, 'b')}/history", headers=owner.headers)
    assert [(v["version"], v["action"]) for v in b_history.json()["items"]] == [
        (3, "create"),
        (2, "delete"),
        (1, "create"),
    ]
    # Every revision's snapshot is the namespace exactly as that write left it.
    expected = {
        3: {"a": "a2"},
        4: {"a": "a2", "b": "b1"},
        5: {"a": "a3", "b": "b1"},
        6: {"a": "a3"},
        7: {"a": "a3", "b": "b2"},
    }
    for revision, values in expected.items():
        seen = await snapshot(client, owner, ns, revision)
        assert {e["key"]: e["value"] for e in seen["entries"]} == values, revision
    diff = await client.get(
        f"{API}/namespaces/{ns}/diff", headers=owner.headers, params={"from": 5, "to": 7}
    )
    assert [c["key"] for c in diff.json()["changed"]] == ["b"]
    events = await client.get(
        f"{API}/audit", headers=owner.headers, params={"action": "config.", "limit": 50}
    )
    assert len(events.json()["items"]) == 8  # one per revision, the first write's included


async def test_a_refused_write_leaves_its_batch_alone(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ns = await new_namespace(client, owner)
    other = await register(client, "globex")
    foreign = await new_namespace(client, other, "foreign")
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    writer = app.state.entry_writer
    await client.put(
        entry(ns, "kept"), headers=owner.headers, json={"value": 1, "value_type": "number"}
    )
    before = writer.batches

    async with held(app, owner, ns):
        tasks = [
            asyncio.create_task(
                client.put(entry(ns, "x"), headers=owner.headers, json={"value": "x"})
            )
        ]
        await taken_up(app.state.entry_writer)
        sends = [
            client.put(entry(ns, "y"), headers=owner.headers, json={"value": "y"}),
            # Stale If-Match: 412. The key already exists: 409. Another tenant's: 404.
            client.put(
                entry(ns, "kept"),
                headers={**owner.headers, "If-Match": '"7"'},
                json={"value": 2, "value_type": "number"},
            ),
            client.post(
                entry(ns),
                headers=owner.headers,
                json={"key": "kept", "value": 3, "value_type": "number"},
            ),
            client.put(entry(foreign, "z"), headers=owner.headers, json={"value": "z"}),
            client.delete(entry(ns, "missing"), headers=owner.headers),
            client.patch(entry(ns, "kept"), headers=owner.headers, json={"value": "not a number"}),
            client.put(entry(ns, "w"), headers=other.headers, json={"value": "w"}),
            client.put(
                entry(ns, "kept"),
                headers={**owner.headers, "If-Match": '"1"'},
                json={"value": 4, "value_type": "number"},
            ),
        ]
        tasks += [asyncio.create_task(send) for send in sends]
        await queued(tasks, writer)
    answers = [await t for t in tasks]

    assert writer.batches == before + 2
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert_error(answers[2], 412, "PRECONDITION_FAILED")
    assert_error(answers[3], 409, "CONFLICT")
    assert_error(answers[4], 404, "NOT_FOUND")
    assert_error(answers[5], 404, "NOT_FOUND")
    assert_error(answers[6], 422, "VALIDATION_ERROR")
    assert_error(answers[7], 404, "NOT_FOUND")
    assert answers[8].status_code == 200 and answers[8].json()["version"] == 2
    assert [a.json()["revision"] for a in (answers[0], answers[1], answers[8])] == [2, 3, 4]
    latest = await snapshot(client, owner, ns, 4)
    assert {e["key"]: e["value"] for e in latest["entries"]} == {"kept": 4, "x": "x", "y": "y"}
    assert (await client.get(entry(foreign, "z"), headers=other.headers)).status_code == 404
    # The viewer may not write at all: refused before joining any batch, and audited.
    denied = await client.put(entry(ns, "v"), headers=viewer.headers, json={"value": "v"})
    assert_error(denied, 403, "FORBIDDEN")
    audit = await client.get(
        f"{API}/audit", headers=owner.headers, params={"action": "permission.denied"}
    )
    assert len(audit.json()["items"]) == 1


POISON = {
    "sqlite": [
        "CREATE TRIGGER poison BEFORE INSERT ON entry_versions WHEN NEW.key = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
    ],
    "postgres": [
        "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
        "IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER poison BEFORE INSERT ON entry_versions FOR EACH ROW EXECUTE FUNCTION poison()",
    ],
    "mariadb": [
        "CREATE TRIGGER poison BEFORE INSERT ON entry_versions FOR EACH ROW "
        "IF NEW.`key` = 'poison' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned'; "
        "END IF"
    ],
}
CURE = {
    "sqlite": ["DROP TRIGGER poison"],
    "postgres": ["DROP TRIGGER poison ON entry_versions", "DROP FUNCTION poison()"],
    "mariadb": ["DROP TRIGGER poison"],
}


async def test_a_write_the_database_refuses_fails_alone(
    client: httpx.AsyncClient, owner: Account, app: Any, backend: Any
) -> None:
    ns = await new_namespace(client, owner)
    writer = app.state.entry_writer
    superuser = make_engine(backend.superuser_url, poolclass=NullPool)  # makes a trigger
    async with superuser.begin() as connection:
        for statement in POISON[backend.name]:
            await connection.execute(text(statement))
    try:
        async with held(app, owner, ns):
            tasks = [
                asyncio.create_task(
                    client.put(
                        entry(ns, "first"),
                        headers=owner.headers,
                        json={"value": 1, "value_type": "number"},
                    )
                )
            ]
            await taken_up(app.state.entry_writer)
            tasks += [
                asyncio.create_task(
                    client.put(entry(ns, key), headers=owner.headers, json={"value": key})
                )
                for key in ("good", "poison", "fine")
            ]
            await queued(tasks, writer)
        answers = [await t for t in tasks]
    finally:
        async with superuser.begin() as connection:
            for statement in CURE[backend.name]:
                await connection.execute(text(statement))
        await superuser.dispose()

    assert [a.status_code for a in answers] == [201, 201, 500, 201]
    assert_error(answers[2], 500, "INTERNAL")
    assert "poisoned" not in answers[2].text
    assert sorted(a.json()["revision"] for a in answers if a.status_code == 201) == [1, 2, 3]
    latest = await snapshot(client, owner, ns, 3)
    assert sorted(e["key"] for e in latest["entries"]) == ["fine", "first", "good"]
    # And the writer carries on.
    after = await client.put(entry(ns, "later"), headers=owner.headers, json={"value": "x"})
    assert after.status_code == 201 and after.json()["revision"] == 4


async def test_many_writers_on_many_namespaces_lose_nothing(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    spaces = [await new_namespace(client, owner, f"svc{n}/prod") for n in range(4)]
    other = await register(client, "globex")
    theirs = await new_namespace(client, other, "theirs")
    writer = app.state.entry_writer
    before = writer.batches

    async def write(n: int) -> httpx.Response:
        if n % 5 == 4:
            return await client.put(
                entry(theirs, f"k{n}"),
                headers=other.headers,
                json={"value": n, "value_type": "number"},
            )
        return await client.put(
            entry(spaces[n % 4], f"k{n % 3}"),
            headers=owner.headers,
            json={"value": n, "value_type": "number"},
        )

    answers = await asyncio.gather(*(write(n) for n in range(60)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert writer.batches - before < 60  # some of them shared a transaction
    for ns, account, expected in [(s, owner, 12) for s in spaces] + [(theirs, other, 12)]:
        listed = await client.get(f"{API}/namespaces/{ns}", headers=account.headers)
        assert listed.json()["revision"] == expected
        revisions = await client.get(
            f"{API}/namespaces/{ns}/revisions", headers=account.headers, params={"limit": 100}
        )
        assert [r["revision"] for r in revisions.json()["items"]] == list(range(expected, 0, -1))
