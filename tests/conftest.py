"""Test harness: every API test runs on SQLite, PostgreSQL and MariaDB, each on a clean database.

In CI (``CI=true``) a missing PostgreSQL, MariaDB or Redis fails the run; elsewhere the tests
that need it are skipped with a one-line reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import NullPool

from konfig.app import create_app
from konfig.db.engine import make_engine, make_sessionmaker
from konfig.db.migrate import upgrade
from konfig.db.roles import Roles, create_roles
from konfig.models import metadata
from konfig.settings import Settings
from tests.support.apps import free_port

PG_ADMIN_URL = os.environ.get("KONFIG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIADB_URL = os.environ.get("KONFIG_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("KONFIG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "SecurePassword123"


def unavailable(what: str) -> NoReturn:
    """Something a test needs is missing: fail loudly in CI, skip with one line elsewhere."""
    if IN_CI:
        pytest.fail(f"CI needs {what}", pytrace=False)
    pytest.skip(what)


def service_missing(what: str, error: BaseException) -> NoReturn:
    unavailable(f"{what} is not reachable ({type(error).__name__}: {error})")


async def create_pg_database() -> str:
    import asyncpg

    name = f"konfig_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_pg_database(url: str, roles: Sequence[str] = ()) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in roles:  # their grants and objects were in that database alone
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()


async def create_mariadb_database() -> tuple[str, str]:
    """A fresh MariaDB database of this session's own: its name and async URL."""
    import aiomysql

    name = f"konfig_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    server = make_url(MARIADB_URL)
    try:
        conn = await aiomysql.connect(**_mariadb_login(), connect_timeout=5)
    except Exception as exc:  # aiomysql raises OperationalError wrapped in several ways
        service_missing(f"MariaDB at {server.host}:{server.port or 3306}", exc)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()
    url = server.set(drivername="mysql+aiomysql", database=name)
    return name, url.render_as_string(hide_password=False)


async def drop_mariadb_database(name: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(**_mariadb_login(), connect_timeout=5)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


def _mariadb_login() -> dict[str, Any]:
    server = make_url(MARIADB_URL)
    return {
        "host": server.host or "127.0.0.1",
        "port": server.port or 3306,
        "user": server.username or "root",
        "password": server.password or "",
    }


@dataclass
class Backend:
    name: str
    url: str  # async SQLAlchemy URL: on PostgreSQL, the app role (row-level security holds)
    owner_url: str = ""  # PostgreSQL: the tables' owner, which migrates
    admin_url: str = ""  # PostgreSQL: a superuser, for what the tests set up or wipe

    @property
    def superuser_url(self) -> str:
        """For a test's own work behind the app's back (row-level security does not hold)."""
        return self.admin_url or self.url


_ADMIN_URLS: dict[str, str] = {}  # app URL -> superuser URL of the same database


def test_roles() -> Roles:
    """An owner and an app role of this test session's own: roles are cluster-wide, and
    sessions running side by side (pytest-xdist) must not alter one another's."""
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    return Roles(f"konfig_owner_{suffix}", "owner-password", f"konfig_app_{suffix}", "app-password")


def as_role(url: str, role: str, password: str) -> str:
    return make_url(url).set(username=role, password=password).render_as_string(False)


# For a test about PostgreSQL alone (row-level security, losing the server): it runs on that
# backend only, rather than being collected on SQLite to be skipped there.
only_postgres = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture(scope="session", params=["sqlite", "postgres", "mariadb"])
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    """A migrated database for the whole session, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "konfig.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        yield Backend("sqlite", url)
        return
    if request.param == "mariadb":
        name, url = await create_mariadb_database()
        try:
            await upgrade(url)
            yield Backend("mariadb", url)
        finally:
            await drop_mariadb_database(name)
        return
    # On PostgreSQL the suite runs as Konfig does in production: migrated by the tables' owner,
    # served by an app role that owns nothing and has no BYPASSRLS (row-level security holds).
    plain = await create_pg_database()
    admin = plain.replace("postgresql://", "postgresql+asyncpg://", 1)
    roles = test_roles()
    try:
        await create_roles(admin, roles, [])
        owner = as_role(admin, roles.owner, roles.owner_password)
        url = as_role(admin, roles.app, roles.app_password)
        await upgrade(owner)
        _ADMIN_URLS[url] = admin
        yield Backend("postgres", url, owner, admin)
    finally:
        await drop_pg_database(plain, roles=[roles.app, roles.owner])


@asynccontextmanager
async def backstage(app: Any) -> AsyncIterator[AsyncSession]:
    """A transaction of the test's own behind the app's back, committed when the block ends: on
    PostgreSQL as a superuser (the app role may not create triggers, and row-level security
    shows it one tenant at most)."""
    url = app.state.settings.resolved_database_url
    engine = make_engine(_ADMIN_URLS.get(url, url), poolclass=NullPool)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


async def wipe(url: str) -> None:
    """Empty every table (on PostgreSQL as a superuser: the app role sees one tenant at most)."""
    engine = make_engine(_ADMIN_URLS.get(url, url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(delete(table))
    finally:
        await engine.dispose()


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend.url, tmp_path)


def make_settings(url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "data_dir": data_dir,
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        "env": "development",
        # The cheapest argon2id cost: the suite hashes hundreds of passwords.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
    }
    if overrides.get("env") == "production":  # production refuses less than OWASP's minimum
        values |= {"argon2_time_cost": 2, "argon2_memory_kib": 19456}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def app(settings: Settings, backend: Backend) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application
    await wipe(backend.url)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as http:
        yield http


@dataclass
class Account:
    tenant_id: str
    user_id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(client: httpx.AsyncClient, name: str, email: str | None = None) -> Account:
    """Register a tenant with its owner and log in."""
    email = email or f"owner@{name}.example.com"
    created = await client.post(
        "/api/v1/auth/register", json={"name": name, "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    tokens = await login(client, email)
    body = created.json()
    return Account(
        body["tenant"]["id"],
        body["user"]["id"],
        email,
        tokens["access_token"],
        tokens["refresh_token"],
    )


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    answer = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def add_user(
    client: httpx.AsyncClient,
    admin: Account,
    email: str,
    role: str | None = None,
    *,
    grants: list[dict[str, str]] | None = None,
) -> Account:
    """Add a user with ``role`` (or ``grants``) to ``admin``'s tenant and log them in."""
    access: dict[str, Any] = {"role": role} if grants is None else {"grants": grants}
    created = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": email, "password": PASSWORD, **access},
    )
    assert created.status_code == 201, created.text
    tokens = await login(client, email)
    return Account(
        admin.tenant_id,
        created.json()["id"],
        email,
        tokens["access_token"],
        tokens["refresh_token"],
    )


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Account:
    return await register(client, "acme")


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient) -> Account:
    return await register(client, "globex")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is an error in the one shape, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A PostgreSQL database of the module's own, for the `konfig serve` replicas it starts."""
    url = asyncio.run(create_pg_database())
    try:
        yield url
    finally:
        asyncio.run(drop_pg_database(url))


@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    """The test app behind a real HTTP server, for streaming responses."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task
