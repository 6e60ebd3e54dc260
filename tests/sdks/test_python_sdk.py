"""The Python SDK beyond the shared scenarios: its distribution, its typed getters, its event
parser, and its watch behind a proxy that has no event stream (against a live server)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import queue
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig_client import AsyncKonfig, Config, Konfig, MissingKey, Unauthenticated, WrongType
from konfig_client._watch import ServerSentEvent, parse_events
from tests.sdks.conftest import Site
from tests.sdks.drivers import SDKS

ROOT = SDKS.parent
SERVICE = {"port": 8080, "region": "eu"}


def test_the_sdk_is_its_own_distribution_on_httpx_alone() -> None:
    project = tomllib.loads((SDKS / "python" / "pyproject.toml").read_text())["project"]
    assert project["name"] == "konfig-client"
    assert project["dependencies"] == ["httpx>=0.28"]
    assert (SDKS / "python" / "src" / "konfig_client" / "py.typed").exists()
    assert importlib.metadata.requires("konfig-client") == ["httpx>=0.28"]
    # The server names it by its folder here: pip never asks an index for `konfig-client`.
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "konfig-client @ {root:uri}/sdks/python" in server


def test_typed_getters_defaults_and_the_errors_they_raise() -> None:
    config = Config("payments/production", {"n": 2.5, "flag": True, "name": "x", "doc": [1]})
    assert config.get_number("n") == 2.5
    assert config.get_boolean("flag") is True
    assert config.get_json("doc") == [1]
    assert config.get_string("absent", "fallback") == "fallback"
    assert "n" in config and config["name"] == "x" and sorted(config) == sorted(config.keys())
    with pytest.raises(WrongType) as wrong:
        config.get_number("flag", 1)  # a default never hides a value of another type
    assert (wrong.value.code, wrong.value.details["actual"]) == ("WRONG_TYPE", "boolean")
    with pytest.raises(MissingKey) as missing:
        config.get_string("absent")
    assert missing.value.code == "MISSING_KEY"
    assert str(missing.value) == "payments/production has no key absent"


def test_from_env_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KONFIG_URL", raising=False)
    with pytest.raises(ValueError, match="KONFIG_URL"):
        Konfig.from_env()
    monkeypatch.setenv("KONFIG_URL", "http://konfig.test/")
    monkeypatch.setenv("KONFIG_TOKEN", "kfg_x")
    with Konfig.from_env(fail_fast=True) as konfig:
        assert (konfig.url, konfig.token, konfig.retry.attempts) == (
            "http://konfig.test",
            "kfg_x",
            1,
        )


def test_the_event_parser_follows_the_whatwg_rules() -> None:
    lines = [
        "retry: 2000",
        ": ping",
        "id: e1",
        "event: change",
        "data: {",
        "data:}",
        "",
        "",
        "id: bad\0id",
        "data: plain",
        "",
        "data: unterminated",
    ]
    assert list(parse_events(lines)) == [
        ServerSentEvent("change", "{\n}", "e1"),
        ServerSentEvent("message", "plain", "e1"),  # an id with NUL is ignored
    ]


class NoStreamProxy(BaseHTTPRequestHandler):
    """Forwards reads to the server, but answers an HTML 404 for event streams, as a proxy
    that does not know them would."""

    upstream = ""

    def do_GET(self) -> None:
        if self.path.split("?")[0].endswith("/events"):
            self._answer(404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        answer = httpx.get(self.upstream + self.path, headers=headers, timeout=120)
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "etag")}
        self._answer(answer.status_code, kept, answer.content)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(site: Site) -> Iterator[str]:
    handler = type("Proxy", (NoStreamProxy,), {"upstream": site.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# The watch falls back to the last-known-good file when the stream fails: warned, as meant.
@pytest.mark.filterwarnings("ignore:Konfig is unreachable")
def test_a_watch_long_polls_where_no_event_stream_can_be_had(
    site: Site, proxy: str, tmp_path: Path
) -> None:
    name, namespace_id = site.service("python-behind-a-proxy")
    _, token = site.token("read")
    seen: queue.Queue[tuple[Config, str]] = queue.Queue()
    with Konfig(proxy, token, cache_path=tmp_path / "lkg.json") as konfig:
        watch = konfig.watch(name, lambda config, _: seen.put((config, watch.mode)), wait=60)
        with watch:
            first, mode = seen.get(timeout=30)
            assert (first.values, mode) == (SERVICE, "poll")
            site.set("port", 9090, "number", at=namespace_id)
            changed, mode = seen.get(timeout=30)
            assert (changed.values, mode) == (SERVICE | {"port": 9090}, "poll")
            assert changed.etag != first.etag
        assert watch.wait(timeout=0)  # stopped: ended, with no error to raise
        assert konfig.get(name).etag == changed.etag  # the long poll saw the current state

        # Asked for server-sent events alone, the same proxy is a failure, retried (as a 5xx
        # would be: the proxy may be fixed) and reported.
        failures: queue.Queue[tuple[str, str, bool]] = queue.Queue()
        with konfig.watch(
            name, mode="sse", on_error=lambda e, r: failures.put((e.code, str(e), r))
        ) as only_sse:
            code, message, retrying = failures.get(timeout=30)
        assert (code, retrying) == ("INTERNAL", True)
        assert "no event stream (text/html)" in message
        assert only_sse.current is not None and only_sse.current.stale  # the file's copy


@pytest.mark.parametrize("mode", ["sse", "poll"])
async def test_the_async_watch_follows_changes_until_its_token_is_revoked(
    site: Site, mode: str
) -> None:
    name, namespace_id = site.service(f"python-async-{mode}")
    token_id, token = site.token("read")
    seen: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()

    async def changed(config: Config, previous: Config | None) -> None:
        await seen.put((config.values, watch.mode))

    async with AsyncKonfig.from_env(site.url, token) as konfig:
        assert (await konfig.get(name)).get_number("port") == 8080
        watch = konfig.watch(name, changed, mode="sse" if mode == "sse" else "poll", wait=60)
        assert await asyncio.wait_for(seen.get(), 30) == (SERVICE, mode)
        await asyncio.to_thread(site.set, "port", 9090, "number", at=namespace_id)
        assert await asyncio.wait_for(seen.get(), 30) == (SERVICE | {"port": 9090}, mode)
        await asyncio.to_thread(site.revoke, token_id)
        with pytest.raises(Unauthenticated):
            await asyncio.wait_for(watch.wait(), 30)
        assert watch.error is not None and watch.error.code == "UNAUTHENTICATED"


async def test_an_async_watch_stops_from_its_own_listener(site: Site) -> None:
    name, _ = site.service("python-async-stop")
    _, token = site.token("read")
    async with AsyncKonfig(site.url, token) as konfig:
        watch = konfig.watch(name, lambda config, previous: watch.stop())
        await asyncio.wait_for(watch.wait(), 30)  # returns: stopped, no error
        assert watch.stopped and watch.error is None and watch.current is not None


@pytest.mark.filterwarnings("ignore:Konfig is unreachable")
async def test_the_async_watch_behind_a_proxy_with_no_event_stream(
    site: Site, proxy: str, tmp_path: Path
) -> None:
    name, namespace_id = site.service("python-async-behind-a-proxy")
    _, token = site.token("read")
    seen: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
    async with AsyncKonfig(proxy, token, cache_path=tmp_path / "lkg.json") as konfig:
        async with konfig.watch(name, wait=60) as watch:
            watch.on_change(lambda config, _: seen.put_nowait((config.values, watch.mode)))
            assert await asyncio.wait_for(seen.get(), 30) == (SERVICE, "poll")
            await asyncio.to_thread(site.set, "port", 9090, "number", at=namespace_id)
            assert await asyncio.wait_for(seen.get(), 30) == (SERVICE | {"port": 9090}, "poll")
        assert watch.stopped and watch.error is None

        failures: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        only_sse = konfig.watch(
            name, mode="sse", on_error=lambda e, retrying: failures.put_nowait((e.code, retrying))
        )
        assert await asyncio.wait_for(failures.get(), 30) == ("INTERNAL", True)
        assert only_sse.current is not None and only_sse.current.stale  # the file's copy
        assert only_sse.current.values == SERVICE | {"port": 9090}
        only_sse.stop()
        await only_sse.wait()
