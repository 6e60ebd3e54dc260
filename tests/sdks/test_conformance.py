"""The SDK contract, the same scenarios for every SDK against a live ``konfig serve``.

Each SDK is driven through its conformance driver (``drivers.py``): read, typed getters,
errors mirroring the server's codes, watch (server-sent events and long polls) woken by a
change, resumed after a restart, the last-known-good file on a dead server, fail-fast, and a
revoked token.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sdks.conftest import NS, RESOLVED, Site
from tests.sdks.drivers import SDK_NAMES, Driver
from tests.support.apps import free_port

pytestmark = pytest.mark.slow

MASKED = RESOLVED | {"db_password": "********"}
SERVICE = {"port": 8080, "region": "eu"}  # a namespace of Site.service()
# Every SDK streams server-sent events and long-polls.
WATCH_CASES = [
    ("python", "sse"),
    ("python", "poll"),
    ("javascript", "sse"),
    ("javascript", "poll"),
    ("go", "sse"),
    ("go", "poll"),
    ("java", "sse"),
    ("java", "poll"),
]
# Long enough that no long poll times out and no heartbeat passes during a test: a watch that
# wakes within this deadline was woken by the change itself, not by polling again.
WAIT = "60"
WAKE_DEADLINE = 10.0


@pytest.fixture(scope="module")
def reader(site: Site) -> str:
    """A token that reads ``payments/*`` with its secrets."""
    return site.token("read", "secrets")[1]


def test_read_answers_the_resolved_config(driver: Driver, site: Site, reader: str) -> None:
    result = driver.run(site.url, reader, "read", NS)
    assert result.returncode == 0, result.stderr
    assert result.only["config"] == RESOLVED  # with `region` from the ancestor `payments`
    assert result.only["stale"] is False
    fail_fast = driver.run(site.url, reader, "read", NS, "--fail-fast")
    assert fail_fast.only["config"] == RESOLVED


def test_an_sdk_names_its_instance_and_itself_to_the_usage_analytics(
    driver: Driver, site: Site, reader: str
) -> None:
    instance = f"conformance-{driver.sdk}-{time.monotonic_ns()}"
    assert driver.run(site.url, reader, "read", NS, instance=instance).returncode == 0
    answer = site.admin.get(f"/namespaces/{site.namespace_id}/clients")
    assert answer.status_code == 200, answer.text
    [seen] = [c for c in answer.json()["items"] if c["instance"] == instance]
    prefix = {
        "python": "konfig-python/",
        "javascript": "konfig-javascript/",
        "go": "konfig-go/",
        "java": "konfig-java/",
    }
    assert seen["sdk"].startswith(prefix[driver.sdk]) and seen["current"], seen


def test_secrets_are_masked_without_the_secrets_permission(driver: Driver, site: Site) -> None:
    _, token = site.token("read")
    assert driver.run(site.url, token, "read", NS).only["config"] == MASKED


@pytest.mark.parametrize(
    ("key", "kind", "value"),
    [
        ("currency", "string", "USD"),
        ("region", "string", "eu"),
        ("timeout", "number", 10),
        ("debug", "boolean", False),
        ("limits", "json", {"burst": [1, 2], "rate": 2.5}),
        ("timeout", "json", 10),
    ],
)
def test_typed_getters(
    driver: Driver, site: Site, reader: str, key: str, kind: str, value: object
) -> None:
    result = driver.run(site.url, reader, "get", NS, key, kind)
    assert result.returncode == 0, (result.lines, result.stderr)
    assert result.only == {"value": value}


@pytest.mark.parametrize(
    ("key", "kind", "code"),
    [
        ("timeout", "string", "WRONG_TYPE"),
        ("currency", "number", "WRONG_TYPE"),
        ("debug", "number", "WRONG_TYPE"),  # a boolean is not a number
        ("timeout", "boolean", "WRONG_TYPE"),
        ("nowhere", "string", "MISSING_KEY"),
    ],
)
def test_typed_getters_refuse_another_type(
    driver: Driver, site: Site, reader: str, key: str, kind: str, code: str
) -> None:
    assert driver.run(site.url, reader, "get", NS, key, kind).error["code"] == code


def test_errors_mirror_the_server_codes(driver: Driver, site: Site, reader: str) -> None:
    missing = driver.run(site.url, reader, "read", "payments/nowhere").error
    assert (missing["code"], missing["status"]) == ("NOT_FOUND", 404)
    assert "payments/nowhere" in missing["message"]  # the server's own words
    outside = driver.run(site.url, reader, "read", "billing/production").error
    assert (outside["code"], outside["status"]) == ("FORBIDDEN", 403)
    for token in ("kfg_not-a-token", None):
        refused = driver.run(site.url, token, "read", NS).error
        assert (refused["code"], refused["status"]) == ("UNAUTHENTICATED", 401)


@pytest.mark.parametrize(("driver", "mode"), WATCH_CASES, indirect=["driver"])
def test_watch_wakes_on_a_change(
    driver: Driver, mode: str, site: Site, reader: str, record_property: Any
) -> None:
    name, namespace_id = site.service(f"watch-{driver.sdk}-{mode}")
    watching = driver.watch(site.url, reader, name, "3", "--mode", mode, "--wait", WAIT)
    try:
        first = watching.next()
        assert first["config"] == SERVICE
        assert first["mode"] == mode
        for port in (9090, 9191):
            sent = time.perf_counter()
            site.set("port", port, "number", at=namespace_id)
            changed = watching.next(timeout=WAKE_DEADLINE)
            # Reported (junit XML), never asserted: bench/sdk_watch.py measures it properly.
            record_property(f"wake_ms_{port}", round((time.perf_counter() - sent) * 1000, 1))
            assert changed["config"] == SERVICE | {"port": port}
            assert changed["stale"] is False
        assert watching.exit_code() == 0
    finally:
        watching.stop()


@pytest.mark.parametrize(("driver", "mode"), WATCH_CASES, indirect=["driver"])
def test_watch_resumes_after_a_server_restart(driver: Driver, mode: str, own_site: Site) -> None:
    name, namespace_id = own_site.service(f"restart-{driver.sdk}-{mode}")
    _, token = own_site.token("read")
    watching = driver.watch(own_site.url, token, name, "2", "--mode", mode, "--wait", WAIT)
    try:
        assert watching.next()["config"] == SERVICE
        own_site.stop()
        own_site.restart()
        own_site.set("port", 9090, "number", at=namespace_id)
        # The next config is the change: the state it had is not sent again (Last-Event-ID,
        # If-None-Match), and nothing was missed.
        resumed = watching.next(timeout=90)
        assert resumed["config"] == SERVICE | {"port": 9090}
        assert watching.exit_code() == 0
    finally:
        watching.stop()
    assert {retry["code"] for retry in watching.retries} <= {"CONNECTION_ERROR", "INTERNAL"}
    assert watching.retries, "the outage went unnoticed"


def test_last_known_good_on_a_dead_server(driver: Driver, own_site: Site, tmp_path: Path) -> None:
    cache = tmp_path / "lkg" / "konfig.json"
    name, namespace_id = own_site.service(f"lkg-{driver.sdk}")
    _, token = own_site.token("read")
    fresh = driver.run(own_site.url, token, "read", name, "--cache", str(cache))
    assert fresh.only["stale"] is False
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert os.listdir(cache.parent) == ["konfig.json"]  # written aside, then renamed
    own_site.stop()

    stale = driver.run(own_site.url, token, "read", name, "--cache", str(cache))
    assert stale.returncode == 0, stale.lines
    assert (stale.only["config"], stale.only["stale"]) == (SERVICE, True)
    assert "unreachable" in stale.stderr  # the stale state is visible in the service's log
    assert driver.run(own_site.url, token, "read", name).error["code"] == "CONNECTION_ERROR"
    fail_fast = driver.run(own_site.url, token, "read", name, "--cache", str(cache), "--fail-fast")
    assert fail_fast.error["code"] == "CONNECTION_ERROR"
    watching = driver.watch(own_site.url, token, name, "2", "--cache", str(cache), "--wait", WAIT)
    try:
        first = watching.next()
        assert (first["config"], first["stale"]) == (SERVICE, True)  # at once, server down
        own_site.restart()
        own_site.set("port", 9090, "number", at=namespace_id)
        fresh_again = watching.next(timeout=90)
        assert fresh_again["stale"] is False
        assert fresh_again["config"]["port"] in (8080, 9090)
        assert watching.exit_code() == 0
    finally:
        watching.stop()


@pytest.mark.parametrize("writer", SDK_NAMES)
def test_one_last_known_good_file_serves_every_sdk(
    writer: str, every_driver: dict[str, Driver], site: Site, tmp_path: Path
) -> None:
    name, _ = site.service(f"shared-lkg-{writer}")
    _, token = site.token("read")
    cache = str(tmp_path / "konfig.json")
    assert every_driver[writer].run(site.url, token, "read", name, "--cache", cache).returncode == 0
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for reader in SDK_NAMES:
        stale = every_driver[reader].run(nowhere, token, "read", name, "--cache", cache)
        assert (stale.only["config"], stale.only["stale"]) == (SERVICE, True), reader


def test_a_revoked_token_is_refused(driver: Driver, site: Site) -> None:
    token_id, token = site.token("read")
    assert driver.run(site.url, token, "read", NS).returncode == 0
    site.revoke(token_id)
    refused = driver.run(site.url, token, "read", NS).error
    assert (refused["code"], refused["status"]) == ("UNAUTHENTICATED", 401)


@pytest.mark.parametrize(("driver", "mode"), WATCH_CASES, indirect=["driver"])
def test_a_watch_ends_when_its_token_is_revoked(driver: Driver, mode: str, site: Site) -> None:
    token_id, token = site.token("read")
    watching = driver.watch(site.url, token, NS, "5", "--mode", mode, "--wait", WAIT)
    try:
        assert watching.next()["config"] == MASKED
        site.revoke(token_id)
        ended = watching.next(timeout=WAKE_DEADLINE)
        assert ended["error"]["code"] == "UNAUTHENTICATED"
        assert watching.exit_code() == 1
    finally:
        watching.stop()


@pytest.mark.parametrize(("driver", "mode"), WATCH_CASES, indirect=["driver"])
def test_a_watch_ends_when_its_namespace_is_deleted(driver: Driver, mode: str, site: Site) -> None:
    name, namespace_id = site.service(f"deleted-{driver.sdk}-{mode}")
    _, token = site.token("read")
    watching = driver.watch(site.url, token, name, "5", "--mode", mode, "--wait", WAIT)
    try:
        assert watching.next()["config"] == SERVICE
        deleted = site.admin.delete(f"/namespaces/{namespace_id}", params={"force": "true"})
        assert deleted.status_code == 204, deleted.text
        assert watching.next(timeout=WAKE_DEADLINE)["error"]["code"] == "NOT_FOUND"
        assert watching.exit_code() == 1
    finally:
        watching.stop()
