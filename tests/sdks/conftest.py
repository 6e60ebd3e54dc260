"""A live ``konfig serve`` with a tenant, namespaces and tokens, for the SDK conformance suite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.sdks.drivers import SDK_NAMES, Driver, build
from tests.support.apps import wait_ready
from tests.support.cli import new_tenant
from tests.support.servers import ServerProcess, start_server

NS = "payments/production"
# What a token with `secrets` reads: the namespace over its path ancestor `payments`.
RESOLVED = {
    "currency": "USD",
    "db_password": "s3cret-value",
    "debug": False,
    "limits": {"burst": [1, 2], "rate": 2.5},
    "region": "eu",
    "timeout": 10,
}


@dataclass
class Site:
    """A server with a tenant: an admin's API session and the namespace ``payments/production``."""

    server: ServerProcess
    admin: httpx.Client
    namespace_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def set(
        self, key: str, value: Any, value_type: str, *, secret: bool = False, at: str = ""
    ) -> None:
        """Write ``key`` in the namespace with id ``at`` (``payments/production`` by default)."""
        body = {"value": value, "value_type": value_type, "is_secret": secret}
        answer = self.admin.put(f"/namespaces/{at or self.namespace_id}/configs/{key}", json=body)
        assert answer.status_code in (200, 201), answer.text

    def namespace(self, name: str) -> str:
        """A new namespace's id."""
        answer = self.admin.post("/namespaces", json={"name": name})
        assert answer.status_code == 201, answer.text
        namespace_id: str = answer.json()["id"]
        return namespace_id

    def service(self, label: str, port: int = 8080) -> tuple[str, str]:
        """A new namespace ``payments/<label>`` holding ``port``: (its name, its id)."""
        name = f"payments/{label}"
        namespace_id = self.namespace(name)
        self.set("port", port, "number", at=namespace_id)
        return name, namespace_id

    def token(self, *permissions: str, namespaces: str = "payments/*") -> tuple[str, str]:
        """A new API token: (its id, its secret)."""
        scopes = [{"namespaces": namespaces, "permissions": list(permissions)}]
        answer = self.admin.post("/tokens", json={"name": f"t{id(scopes)}", "scopes": scopes})
        assert answer.status_code == 201, answer.text
        return answer.json()["id"], answer.json()["token"]

    def revoke(self, token_id: str) -> None:
        assert self.admin.delete(f"/tokens/{token_id}").status_code == 204

    def stop(self) -> None:
        assert self.server.stop() == 0

    def restart(self) -> None:
        """The same server again: same port, same data directory (and so the same keys)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "konfig", "serve"], env=self.server.env, cwd=self.server.data_dir
        )
        try:
            wait_ready(self.url, proc)
        except AssertionError:
            proc.kill()
            raise
        self.server.proc = proc


def open_site(tmp_path: Path, **env: str) -> Site:
    # The admin's login outlives a long run: a site serves a whole session of one worker.
    server = start_server(tmp_path, KONFIG_ACCESS_TOKEN_MINUTES="600", **env)
    email = new_tenant(server.url)
    login = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    admin = httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    site = Site(server, admin, "")
    site.set("region", "eu", "string", at=site.namespace("payments"))
    site.namespace_id = site.namespace(NS)
    site.set("timeout", 10, "number")
    site.set("currency", "USD", "string")
    site.set("debug", False, "boolean")
    site.set("limits", {"burst": [1, 2], "rate": 2.5}, "json")
    site.set("db_password", "s3cret-value", "string", secret=True)
    return site


def close_site(site: Site) -> None:
    site.admin.close()
    if site.server.proc.poll() is None:
        site.stop()


@pytest.fixture(scope="session")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Driver]:
    """Built on first use, so a run of the Python cases alone needs neither node nor go."""
    return {}


@pytest.fixture(params=SDK_NAMES)
def driver(
    request: pytest.FixtureRequest,
    drivers: dict[str, Driver],
    tmp_path_factory: pytest.TempPathFactory,
) -> Driver:
    sdk: str = request.param
    if sdk not in drivers:
        drivers[sdk] = build(sdk, tmp_path_factory.mktemp(f"sdk-{sdk}"))
    return drivers[sdk]


@pytest.fixture
def every_driver(
    drivers: dict[str, Driver], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Driver]:
    for sdk in SDK_NAMES:
        if sdk not in drivers:
            drivers[sdk] = build(sdk, tmp_path_factory.mktemp(f"sdk-{sdk}"))
    return drivers


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the tests that leave it running (and leave ``payments/production`` be)."""
    opened = open_site(tmp_path_factory.mktemp("site"))
    yield opened
    close_site(opened)


@pytest.fixture(scope="session")
def mortal_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    opened = open_site(tmp_path_factory.mktemp("mortal-site"))
    yield opened
    close_site(opened)


@pytest.fixture
def own_site(mortal_site: Site) -> Site:
    """A server the test may stop and start again: running when the test begins."""
    if mortal_site.server.proc.poll() is not None:
        mortal_site.restart()
    return mortal_site
