"""Three real ``konfig serve`` replicas on one PostgreSQL database and Redis, behind nginx, as
``make cluster`` runs them (``deploy/cluster``), with one replica SIGKILLed under load.

Everything goes through nginx. Writers PUT one key each, with values 1, 2, 3…; readers read the
resolved config; watchers follow it over server-sent events and long polls. In the middle, the
replica holding the most event streams is killed. Then:

(a) no acknowledged write is lost: every PUT answered 2xx is in its key's history, with the
    value and the revision the answer named, and the final state holds each key's last one;
(b) every watcher sees every change. The read path sends states, not deltas: a watcher that
    was busy may get revision 40 and then 43, never 41 and 42, and that is by design. So "sees
    every change" means: each watcher's states, over all its connections, are true snapshots
    (the content the history gives for the revision it names), their revisions strictly
    increase (a reconnection with ``Last-Event-ID`` resends nothing it had and never goes back),
    and the last one is the final state, so every acknowledged write is in a state it received;
(c) reads are monotonic per client: once a client saw revision R (or a key's value v) it never
    gets an older one, whichever replica answers. A client tells what it holds with
    ``If-None-Match`` or ``Last-Event-ID``, as the SDK does (one that sends nothing cannot be
    told apart from a new client: it gets whatever the replica it reaches has);
(d) rate limits are shared through Redis: logins over replicas are refused after the global
    budget, not three times it (a test of its own);
(e) the other replicas serve on: every request started after the kill succeeds (nginx retries
    what it had sent to the dead replica when that is safe), and in-flight reads do too;
(f) migrations ran once when all three started together (a test of its own).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from deploy.cluster.run import Cluster, Replica, nginx_binary
from konfig.db.migrate import head_revision
from konfig.security.crypto import new_key_line
from tests.conftest import (
    PASSWORD,
    REDIS_URL,
    create_pg_database,
    drop_pg_database,
    service_missing,
)
from tests.support.apps import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

NAMESPACE = "loadtest/production"
CONFIG = f"/api/v1/config/{NAMESPACE}"
LOGIN_LIMIT = 6  # logins per account per minute, for (d)
WRITERS = 4
WRITES_EACH = 30
KILL_AFTER = 40  # acknowledged writes before the kill
READERS = 3
SSE_WATCHERS = 6
POLLERS = 3
GUARD = 45.0  # seconds: a hung phase fails the test instead of hanging it (not a measurement)


@dataclass
class Running:
    cluster: Cluster
    database_url: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if nginx_binary() is None:
        service_missing("nginx (Debian's nginx-light)", FileNotFoundError("no nginx binary"))
    probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        probe.ping()
    except (OSError, redis.RedisError) as exc:
        service_missing("Redis at 127.0.0.1:6379", exc)
    database_url = asyncio.run(create_pg_database())
    prefix = f"konfig-cluster-test-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KONFIG_", "CLUSTER_"))}
    env |= {
        "KONFIG_DATABASE_URL": database_url,
        "KONFIG_REDIS_URL": REDIS_URL,
        "KONFIG_REDIS_KEY_PREFIX": prefix,
        "KONFIG_NOTIFY_CHANNEL": prefix.replace("-", "_"),
        "KONFIG_SECRET_KEY": "cluster-test-secret-key-that-is-long-enough",
        "KONFIG_ENCRYPTION_KEYS": new_key_line(),
        "KONFIG_ARGON2_TIME_COST": "1",
        "KONFIG_ARGON2_MEMORY_KIB": "64",
        "KONFIG_LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT}/minute",
        "KONFIG_LOGIN_ADDRESS_RATE_LIMIT": "10000/minute",
        "KONFIG_RATE_LIMIT_PER_MINUTE": "100000",
        "KONFIG_READ_RATE_LIMIT_PER_MINUTE": "1000000",
        "KONFIG_SSE_HEARTBEAT_SECONDS": "2",
        "KONFIG_LISTENER_CHECK_SECONDS": "1",
        "KONFIG_BACKUP_DEBOUNCE_SECONDS": "0",
        "KONFIG_BACKUP_INTERVAL": "0",
    }
    cluster = Cluster(
        run_dir=tmp_path_factory.mktemp("cluster"),
        listen=f"127.0.0.1:{free_port()}",
        ports=[free_port() for _ in range(3)],
        env=env,
    )
    try:
        cluster.start()
        yield Running(cluster, database_url)
    finally:
        codes = cluster.stop()
        asyncio.run(drop_pg_database(database_url))
        for key in probe.scan_iter(match=f"{prefix}*"):
            probe.delete(key)
        probe.close()
    killed = {
        f"replica-{r.index}" for r in cluster.replicas if r.process and r.process.returncode == -9
    }
    survivors = {name: code for name, code in codes.items() if name not in killed}
    assert all(code == 0 for code in survivors.values()), f"unclean stop: {codes}"


@dataclass
class Tenant:
    owner: dict[str, str]
    reader: dict[str, str]
    namespace_id: str
    limited_email: str


async def _json(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, response.text
    return response.json()


@pytest.fixture(scope="module")
async def tenant(running: Running) -> Tenant:
    async with httpx.AsyncClient(base_url=running.cluster.url, timeout=30) as http:
        email = "owner@cluster.example.com"
        await _json(
            await http.post(
                "/api/v1/auth/register",
                json={"name": "cluster", "email": email, "password": PASSWORD},
            ),
            201,
        )
        tokens = await _json(
            await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}),
            200,
        )
        owner = {"Authorization": f"Bearer {tokens['access_token']}"}
        created = await _json(
            await http.post("/api/v1/namespaces", headers=owner, json={"name": NAMESPACE}), 201
        )
        for writer in range(WRITERS):
            await _json(await _put(http, owner, created["id"], writer, 0), 200, 201)
        account = await _json(
            await http.post("/api/v1/service-accounts", headers=owner, json={"name": "app"}), 201
        )
        token = await _json(
            await http.post(
                "/api/v1/tokens",
                headers=owner,
                json={
                    "name": "app-reader",
                    "service_account_id": account["id"],
                    "scopes": [{"namespaces": "loadtest/**", "permissions": ["read"]}],
                },
            ),
            201,
        )
        limited = "limited@cluster.example.com"
        await _json(
            await http.post(
                "/api/v1/users",
                headers=owner,
                json={"email": limited, "password": PASSWORD, "role": "viewer"},
            ),
            201,
        )
    return Tenant(owner, {"Authorization": f"Bearer {token['token']}"}, created["id"], limited)


def _put(
    http: httpx.AsyncClient, owner: dict[str, str], namespace_id: str, writer: int, value: int
) -> Any:
    return http.put(
        f"/api/v1/namespaces/{namespace_id}/configs/w{writer}",
        headers=owner,
        json={"value": value, "value_type": "number"},
    )


def _upstream(response: httpx.Response) -> str:
    """The replica that answered (the last one nginx tried)."""
    upstream: str = response.headers.get("x-konfig-upstream", "")
    return upstream.split(",")[-1].strip()


# (f) ------------------------------------------------------------------------------------------


async def test_migrations_ran_once_when_all_three_started_together(running: Running) -> None:
    report = running.cluster.migration_report()
    assert len(report) == 3
    migrated = [line for line in report if line is not None]
    # The advisory lock let exactly one replica migrate; the other two waited for it and found
    # the schema current (they would have failed on "relation already exists" otherwise).
    assert migrated == [f"database migrated from empty to {head_revision()}"], report
    conn = await asyncpg.connect(running.database_url)
    try:
        versions = await conn.fetch("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    assert [row["version_num"] for row in versions] == [head_revision()]
    async with httpx.AsyncClient(timeout=10) as http:
        for replica in running.cluster.replicas:
            ready = await http.get(f"{replica.url}/ready")
            assert ready.status_code == 200, ready.text


# (d) ------------------------------------------------------------------------------------------


async def test_rate_limits_are_shared_by_the_replicas(running: Running, tenant: Tenant) -> None:
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=running.cluster.url, timeout=30) as http:
        for _ in range(3 * LOGIN_LIMIT):
            answers.append(
                await http.post(
                    "/api/v1/auth/login",
                    json={"email": tenant.limited_email, "password": PASSWORD},
                )
            )
    statuses = [answer.status_code for answer in answers]
    # Counted once for the cluster: with a count per replica, 3 x LOGIN_LIMIT would pass.
    assert statuses == [200] * LOGIN_LIMIT + [429] * (2 * LOGIN_LIMIT), statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[LOGIN_LIMIT:])
    # ... and they were spread over all three replicas, accepted and refused alike.
    assert len({_upstream(a) for a in answers[:LOGIN_LIMIT]}) == 3
    assert len({_upstream(a) for a in answers[LOGIN_LIMIT:]}) == 3


# (a), (b), (c), (e) ----------------------------------------------------------------------------


@dataclass
class Request:
    kind: str  # write, read, poll, stream
    client: str
    started: float
    finished: float = 0.0
    status: int | None = None  # None: no HTTP answer (a transport error)
    error: str = ""
    upstream: str = ""


@dataclass
class Write:
    writer: int
    value: int
    request: Request
    revision: int | None = None


@dataclass
class Event:
    revision: int
    config: dict[str, Any]
    connection: int
    upstream: str


@dataclass
class Load:
    cluster: Cluster
    tenant: Tenant
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    requests: list[Request] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    stream_events: dict[str, list[Event]] = field(default_factory=dict)
    stream_upstreams: dict[str, str] = field(default_factory=dict)  # watcher -> replica now
    stream_connections: dict[str, int] = field(default_factory=dict)
    poll_events: dict[str, list[Event]] = field(default_factory=dict)
    read_violations: list[str] = field(default_factory=list)
    reads: int = 0
    kill_at: float | None = None  # loop time once the killed replica was reaped
    victim: Replica | None = None
    writers_done: asyncio.Event = field(default_factory=asyncio.Event)
    final: dict[str, Any] | None = None  # the writers' keys once they are done
    final_revision: int = 0

    def request(self, kind: str, client: str) -> Request:
        request = Request(kind, client, self.loop.time())
        self.requests.append(request)
        return request

    def answered(self, request: Request, response: httpx.Response) -> None:
        request.finished = self.loop.time()
        request.status = response.status_code
        request.upstream = _upstream(response)

    def failed(self, request: Request, exc: Exception) -> None:
        request.finished = self.loop.time()
        request.error = f"{type(exc).__name__}: {exc}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.cluster.url, timeout=httpx.Timeout(30, read=60))

    @property
    def acknowledged(self) -> int:
        return sum(1 for w in self.writes if w.revision is not None)

    def is_final(self, config: dict[str, Any]) -> bool:
        return self.final is not None and config == self.final


def _vector(config: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(config[f"w{k}"]) for k in range(WRITERS))


async def _writer(load: Load, writer: int) -> None:
    async with load.client() as http:
        for value in range(1, WRITES_EACH + 1):
            request = load.request("write", f"writer-{writer}")
            write = Write(writer, value, request)
            load.writes.append(write)
            try:
                answer = await _put(
                    http, load.tenant.owner, load.tenant.namespace_id, writer, value
                )
            except httpx.TransportError as exc:
                load.failed(request, exc)
            else:
                load.answered(request, answer)
                if answer.status_code in (200, 201):
                    body = answer.json()
                    assert body["value"] == value
                    write.revision = int(body["revision"])
            await asyncio.sleep(0.02)


class _Monotonic:
    """One client's view: the newest revision and key values it has seen."""

    def __init__(self, load: Load, name: str) -> None:
        self.load = load
        self.name = name
        self.revision = 0
        self.vector = (0,) * WRITERS

    def saw(self, config: dict[str, Any], revision: int | None, upstream: str) -> None:
        vector = _vector(config)
        if any(new < old for new, old in zip(vector, self.vector, strict=True)):
            self.load.read_violations.append(
                f"{self.name}: values {vector} from {upstream} after {self.vector}"
            )
        if revision is not None and revision < self.revision:
            self.load.read_violations.append(
                f"{self.name}: revision {revision} from {upstream} after {self.revision}"
            )
        self.vector = tuple(max(a, b) for a, b in zip(vector, self.vector, strict=True))
        self.revision = max(self.revision, revision or 0)


async def _reader(load: Load, index: int, stop: asyncio.Event) -> None:
    """Plain reads, conditional (``If-None-Match``) once it holds a state, as the SDK does."""
    name = f"reader-{index}"
    view = _Monotonic(load, name)
    etag: str | None = None
    held: dict[str, Any] | None = None
    async with load.client() as http:
        while not stop.is_set():
            request = load.request("read", name)
            headers = dict(load.tenant.reader)
            if etag is not None:
                headers["If-None-Match"] = etag
            try:
                answer = await http.get(CONFIG, headers=headers)
            except httpx.TransportError as exc:
                load.failed(request, exc)
                continue
            load.answered(request, answer)
            load.reads += 1
            if answer.status_code == 304:
                assert held is not None
                view.saw(held, None, request.upstream)
            elif answer.status_code == 200:
                etag, held = answer.headers["etag"], answer.json()
                view.saw(held, None, request.upstream)


async def _poller(load: Load, index: int) -> None:
    """Long polls (``?wait``) on the explained config, each holding the ETag it has."""
    name = f"poller-{index}"
    view = _Monotonic(load, name)
    events = load.poll_events[name] = []
    etag: str | None = None
    async with load.client() as http:
        while not (events and load.is_final(events[-1].config)):
            request = load.request("poll", name)
            headers = dict(load.tenant.reader)
            if etag is not None:
                headers["If-None-Match"] = etag
            try:
                answer = await http.get(
                    CONFIG, headers=headers, params={"explain": "true", "wait": 3}
                )
            except httpx.TransportError as exc:
                load.failed(request, exc)
                continue
            load.answered(request, answer)
            if answer.status_code == 200:
                body = answer.json()
                etag = answer.headers["etag"]
                config = {key: item["value"] for key, item in body["keys"].items()}
                events.append(Event(int(body["revision"]), config, 1, request.upstream))
                view.saw(config, int(body["revision"]), request.upstream)


async def _watcher(load: Load, index: int) -> None:
    """Server-sent events, reconnecting with Last-Event-ID as an EventSource would."""
    name = f"watcher-{index}"
    events = load.stream_events[name] = []
    last_id: str | None = None
    connection = 0
    async with load.client() as http:
        while not (events and load.is_final(events[-1].config)):
            connection += 1
            load.stream_connections[name] = connection
            request = load.request("stream", name)
            headers = dict(load.tenant.reader)
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with http.stream("GET", f"{CONFIG}/events", headers=headers) as answer:
                    load.answered(request, answer)
                    if answer.status_code != 200:
                        await answer.aread()
                        await asyncio.sleep(0.1)
                        continue
                    load.stream_upstreams[name] = request.upstream
                    event_id = data = None
                    async for line in answer.aiter_lines():
                        if line.startswith("id:"):
                            event_id = line[3:].strip()
                        elif line.startswith("data:"):
                            data = line[5:].strip()
                        elif line == "" and data is not None:
                            body = json.loads(data)
                            events.append(
                                Event(
                                    int(body["revision"]),
                                    body["config"],
                                    connection,
                                    request.upstream,
                                )
                            )
                            last_id, event_id, data = event_id, None, None
                        if events and load.is_final(events[-1].config):
                            return
            except httpx.TransportError as exc:
                # The stream broke (its replica was killed): reconnect, as EventSource does.
                request.error = request.error or f"stream ended: {type(exc).__name__}"
            load.stream_upstreams.pop(name, None)
            await asyncio.sleep(0.1)


async def _killer(load: Load) -> None:
    while load.acknowledged < KILL_AFTER or len(load.stream_upstreams) < SSE_WATCHERS:
        await asyncio.sleep(0.01)
    by_replica: dict[str, int] = {}
    for upstream in load.stream_upstreams.values():
        by_replica[upstream] = by_replica.get(upstream, 0) + 1
    target = max(by_replica, key=lambda upstream: by_replica[upstream])
    (victim,) = [r for r in load.cluster.replicas if r.address == target]
    load.victim = victim
    await asyncio.to_thread(load.cluster.kill, victim)
    load.kill_at = load.loop.time()


async def _final_state(load: Load) -> dict[str, Any]:
    async with load.client() as http:
        namespace = await _json(
            await http.get(
                f"/api/v1/namespaces/{load.tenant.namespace_id}", headers=load.tenant.owner
            ),
            200,
        )
        snapshot = await _json(
            await http.get(
                f"/api/v1/namespaces/{load.tenant.namespace_id}/revisions/{namespace['revision']}",
                headers=load.tenant.owner,
            ),
            200,
        )
    return {
        "revision": namespace["revision"],
        "config": {entry["key"]: entry["value"] for entry in snapshot["entries"]},
    }


async def _histories(load: Load) -> dict[int, list[dict[str, Any]]]:
    """Every version of every writer's key, oldest first."""
    found: dict[int, list[dict[str, Any]]] = {}
    async with load.client() as http:
        for writer in range(WRITERS):
            versions: list[dict[str, Any]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 100}
                if cursor:
                    params["cursor"] = cursor
                page = await _json(
                    await http.get(
                        f"/api/v1/namespaces/{load.tenant.namespace_id}/configs/w{writer}/history",
                        headers=load.tenant.owner,
                        params=params,
                    ),
                    200,
                )
                versions += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            found[writer] = sorted(versions, key=lambda v: v["revision"])
    return found


def _state_at(histories: dict[int, list[dict[str, Any]]], revision: int) -> dict[str, Any]:
    """The writers' keys as the history says they were at ``revision``."""
    state = {}
    for writer, versions in histories.items():
        written = [v for v in versions if v["revision"] <= revision]
        if written and written[-1]["action"] != "delete":
            state[f"w{writer}"] = written[-1]["value"]
    return state


@pytest.fixture(scope="module")
async def load(running: Running, tenant: Tenant) -> Load:
    load = Load(running.cluster, tenant)
    stop_readers = asyncio.Event()
    watchers = [asyncio.create_task(_watcher(load, i)) for i in range(SSE_WATCHERS)]
    pollers = [asyncio.create_task(_poller(load, i)) for i in range(POLLERS)]
    readers = [asyncio.create_task(_reader(load, i, stop_readers)) for i in range(READERS)]
    killer = asyncio.create_task(_killer(load))
    try:
        async with asyncio.timeout(GUARD):
            await asyncio.gather(*(_writer(load, w) for w in range(WRITERS)))
            await killer
            final = await _final_state(load)
            load.final = final["config"]
            load.final_revision = final["revision"]
            await asyncio.gather(*watchers, *pollers)
            stop_readers.set()
            await asyncio.gather(*readers)
    finally:
        for task in (*watchers, *pollers, *readers, killer):
            task.cancel()
        await asyncio.gather(*watchers, *pollers, *readers, killer, return_exceptions=True)
    return load


async def test_no_acknowledged_write_is_lost(load: Load) -> None:
    acknowledged = [w for w in load.writes if w.revision is not None]
    assert len(acknowledged) >= KILL_AFTER
    revisions = [w.revision for w in acknowledged]
    assert len(set(revisions)) == len(revisions), "two writes acknowledged with one revision"
    histories = await _histories(load)
    for write in acknowledged:
        versions = {v["revision"]: v for v in histories[write.writer]}
        assert write.revision in versions, f"acknowledged write lost: {write}"
        assert versions[write.revision]["value"] == write.value, (write, versions[write.revision])
    # The final state holds each key's last acknowledged value (or a later write whose answer
    # was lost with the killed replica: then it is in the history too).
    assert load.final is not None
    for writer in range(WRITERS):
        last_acked = max(w.value for w in acknowledged if w.writer == writer)
        assert load.final[f"w{writer}"] >= last_acked
        assert load.final[f"w{writer}"] == histories[writer][-1]["value"]
    assert _state_at(histories, load.final_revision) == load.final


async def test_every_watcher_sees_every_change(load: Load) -> None:
    assert load.victim is not None
    histories = await _histories(load)
    last_acked = max(w.revision for w in load.writes if w.revision is not None)
    streams_on_victim = 0
    for name, events in (load.stream_events | load.poll_events).items():
        assert events, f"{name} received nothing"
        revisions = [e.revision for e in events]
        assert revisions == sorted(set(revisions)), f"{name} went back or repeated: {revisions}"
        for event in events:
            assert event.config == _state_at(histories, event.revision), (name, event)
        assert events[-1].config == load.final, name
        assert events[-1].revision >= last_acked, name
        if name.startswith("watcher") and any(e.upstream == load.victim.address for e in events):
            streams_on_victim += 1
            # It lost its stream with the replica, came back through nginx with Last-Event-ID
            # on a survivor and got on from there.
            assert load.stream_connections[name] >= 2, name
            assert events[-1].upstream != load.victim.address, name
    assert streams_on_victim >= 1, "the killed replica held no event stream"


async def test_reads_never_go_back_in_time(load: Load) -> None:
    assert load.reads > 0
    assert load.read_violations == []


async def test_the_other_replicas_serve_on(load: Load) -> None:
    assert load.victim is not None and load.kill_at is not None
    after = [r for r in load.requests if r.started > load.kill_at]
    assert len({r.kind for r in after}) == 4, "every kind of request went on after the kill"
    failed = [r for r in after if r.status is None or r.status >= 400]
    assert failed == [], failed
    assert {r.upstream for r in after if r.status} <= {
        r.address for r in load.cluster.replicas if r is not load.victim
    }
    # Reads that were in flight when it died were retried by nginx on a survivor.
    in_flight = [r for r in load.requests if r.started <= load.kill_at < (r.finished or 0)]
    for request in in_flight:
        if request.kind in ("read", "poll"):
            assert request.status in (200, 304), request
    async with httpx.AsyncClient(timeout=10) as http:
        for replica in load.cluster.replicas:
            if replica is not load.victim:
                assert (await http.get(f"{replica.url}/ready")).status_code == 200
