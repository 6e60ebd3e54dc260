"""Benchmark of scale: a tenant of 10 against one of 10,000 namespaces, and many watchers
(prints figures only, side by side; never fails on speed).

Builds two tenants on their own SQLite databases with `konfig import-tree` (one transaction
each): `svc-NNNN` services of ten keys, each with nine `svc-NNNN/env-K` environments that
override five. Then, each against a `konfig serve` process (one uvicorn worker):

- start-up: launch to the first `/health` answer on an applied schema (wall and CPU);
- cold reads: every read resolves from the database (the cache's max age is set to nothing),
  latency and the server's CPU per request, at both sizes;
- warm reads: `wrk` on one namespace, and round-robin over 1,000 namespaces (10 in the small
  tenant), requests/s and CPU per request;
- namespace creation: `POST /api/v1/namespaces` one after another, p50/p99 at both sizes;
- reads of a namespace alone, then while writers change it 100+ times a second;
- change push: N server-sent-event streams on one namespace (1,000 / 5,000 / 10,000), one
  write at a time: p50/p99/max from the write's answer to each event's arrival, events missed,
  the server's memory per idle watcher, and its CPU per event and the reader's. The streams are
  read by one Go process (`bench/watch_reader.go`, built into a temporary directory; `--reader
  python`: asyncio client processes, which cost the server's cores as much as its fan-out), and
  etcd's watch through its HTTP gateway is measured through the same reader beside each row.

    python bench/scale.py [--namespaces 10000] [--watchers 1000,5000,10000] [--duration 5]
                          [--only startup,cold,warm,create,writes,watchers] [--reader go]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from read_path import _ms, free_port, python_loop_ms  # bench/read_path.py
from watch import _watch as watch_stream  # bench/watch.py
from watch import cpu_seconds, percentile, rss_kib

PASSWORD = "ScaleBenchPassword123"
ENVS = 9  # environments per service: a service and its environments are ten namespaces
FILES = 65536  # descriptors for the server and the watchers' processes
SECTIONS = ("startup", "cold", "warm", "create", "writes", "watchers")


def _split(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _more_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FILES, hard), hard))


# --- The tenants ---------------------------------------------------------------------------


def write_tree(root: Path, tenant: str, namespaces: int) -> None:
    """``root/<tenant>/svc-NNNN.yaml`` and ``…/svc-NNNN/env-K.yaml``: ``namespaces`` in all."""
    folder = root / tenant
    for s in range(max(1, namespaces // (ENVS + 1))):
        service = f"svc-{s:04d}"
        (folder / service).mkdir(parents=True)
        keys = (
            "".join(f"- {{key: key_{k}, value: 'value {k} of {service}'}}\n" for k in range(10))
            + "- {key: max_connections, value: 100, value_type: number}\n"
        )
        (folder / f"{service}.yaml").write_text(f"entries:\n{keys}")
        for e in range(ENVS):
            overrides = "".join(
                f"- {{key: key_{k}, value: 'env {e} value {k}'}}\n" for k in range(5)
            )
            (folder / service / f"env-{e}.yaml").write_text(f"entries:\n{overrides}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss(self) -> int:
        return rss_kib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def environment(workdir: Path, name: str, **extra: str) -> dict[str, str]:
    from konfig.security.crypto import new_key_line

    key_file = workdir / "encryption-keys"
    if not key_file.exists():
        key_file.write_text(new_key_line())
    # Servers run from bytecode, as an installed konfig does (its wheel is compiled when
    # installed); an editable checkout under PYTHONDONTWRITEBYTECODE would compile its source
    # at every launch (0.1-0.2 s of start-up's CPU). The tenants' builds fill the cache.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KONFIG_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    return env | {
        "PYTHONPYCACHEPREFIX": str(workdir / "bytecode"),
        "KONFIG_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / name}.db",
        "KONFIG_DATA_DIR": str(workdir / f"{name}-data"),
        "KONFIG_SECRET_KEY": "scale-bench-secret-key-that-is-long-enough",
        "KONFIG_ENCRYPTION_KEYS": key_file.read_text().strip(),
        "KONFIG_RATE_LIMIT_PER_MINUTE": "1000000",
        "KONFIG_READ_RATE_LIMIT_PER_MINUTE": "100000000",
        **extra,
    }


def serve(env: dict[str, str]) -> tuple[Server, float, float]:
    """A started server, the seconds from launch to its first /health answer, and its CPU."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "konfig", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_more_files,
    )
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=1) as http:
        while True:
            try:
                if http.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.perf_counter() - started > 60:
                raise SystemExit("konfig serve did not start")
            time.sleep(0.005)
    elapsed = time.perf_counter() - started
    server = Server(proc, url, env)
    return server, elapsed, server.cpu()


@dataclass
class Tenant:
    size: int
    env: dict[str, str]
    token: str = ""
    jwt: str = ""
    build_seconds: float = 0.0

    def names(self, limit: int) -> list[str]:
        """Up to ``limit`` environments' names, spread over the services."""
        services = max(1, self.size // (ENVS + 1))
        found = [f"svc-{s:04d}/env-{e}" for e in range(ENVS) for s in range(services)]
        return found[:limit]


def build(workdir: Path, size: int) -> Tenant:
    name = f"t{size}"
    env = environment(workdir, name)
    server, _, _ = serve(env)
    tenant = Tenant(size, env)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            email = f"owner@{name}.example.com"
            http.post(
                "/api/v1/auth/register", json={"name": name, "email": email, "password": PASSWORD}
            ).raise_for_status()
            login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            account = http.post(
                "/api/v1/service-accounts", headers=headers, json={"name": "readers"}
            )
            account.raise_for_status()
            answer = http.post(
                "/api/v1/tokens",
                headers=headers,
                json={
                    "name": "readers",
                    "service_account_id": account.json()["id"],
                    "scopes": [{"namespaces": "**", "permissions": ["read", "write"]}],
                },
            )
            answer.raise_for_status()
            tenant.token = answer.json()["token"]
    finally:
        server.stop()
    tree = workdir / "tree"
    write_tree(tree, name, size)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "konfig", "import-tree", str(tree), "--tenant", name],
        env=env,
        check=True,
        capture_output=True,
    )
    tenant.build_seconds = time.perf_counter() - started
    return tenant


def login(server: Server, tenant: Tenant) -> dict[str, str]:
    email = f"owner@t{tenant.size}.example.com"
    answer = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def namespace_id(server: Server, headers: dict[str, str], name: str) -> str:
    answer = httpx.get(f"{server.url}/api/v1/namespaces", params={"prefix": name}, headers=headers)
    answer.raise_for_status()
    return next(n["id"] for n in answer.json()["items"] if n["name"] == name)


@contextmanager
def serving(tenant: Tenant, **extra: str) -> Iterator[Server]:
    server, _, _ = serve(tenant.env | extra)
    try:
        yield server
    finally:
        server.stop()


# --- Measurements --------------------------------------------------------------------------


def startup(tenant: Tenant, runs: int = 3) -> tuple[float, float, float, float]:
    """The median seconds from launch to /health and the CPU seconds that took, then the same
    to /ready (the features' routes in: ``konfig.routing.DeferredRoutes``)."""
    walls, cpus, ready_walls, ready_cpus = [], [], [], []
    for _ in range(runs):
        server, wall, cpu = serve(tenant.env)
        healthy = time.perf_counter()
        try:
            with httpx.Client(timeout=30) as http:
                http.get(f"{server.url}/ready").raise_for_status()
            ready_walls.append(wall + time.perf_counter() - healthy)
            ready_cpus.append(server.cpu())
        finally:
            server.stop()
        walls.append(wall)
        cpus.append(cpu)
    return (
        statistics.median(walls),
        statistics.median(cpus),
        statistics.median(ready_walls),
        statistics.median(ready_cpus),
    )


def cold_reads(tenant: Tenant, requests: int = 300) -> tuple[float, float, float]:
    """Reads that each resolve from the database: p50 and p99 ms, CPU ms per request."""
    with serving(tenant, KONFIG_CACHE_MAX_AGE_SECONDS="0.000001") as server:
        names = tenant.names(requests)
        headers = {"Authorization": f"Bearer {tenant.token}"}
        timings = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            http.get(f"/api/v1/config/{names[0]}").raise_for_status()  # imports, statements
            cpu = server.cpu()
            for i in range(requests):
                started = time.perf_counter()
                http.get(f"/api/v1/config/{names[i % len(names)]}").raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
            used = server.cpu() - cpu
    return percentile(timings, 50), percentile(timings, 99), used / requests * 1000


def wrk(
    url: str, token: str, paths: list[str], seconds: int, connections: int = 32
) -> tuple[float, float, float, int]:
    """Requests/s, p50 and p99 ms, and the number of requests, cycling through ``paths``."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    quoted = ",".join(f'"{p}"' for p in paths)
    script.write_text(
        textwrap.dedent(
            f"""
            local paths = {{{quoted}}}
            local i = 0
            wrk.headers["Authorization"] = "Bearer {token}"
            request = function()
              i = i + 1
              return wrk.format("GET", paths[(i % #paths) + 1])
            end
            """
        )
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"the read path answered errors: {out.strip().splitlines()[-3:]}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return rps, p50, p99, total


def warm_reads(tenant: Tenant, seconds: int) -> dict[str, tuple[float, float, float, float]]:
    """Requests/s, p50, p99 and CPU µs per request: one namespace, then round-robin."""
    found = {}
    with serving(tenant) as server:
        for label, paths in (
            ("one namespace", [f"/api/v1/config/{tenant.names(1)[0]}"]),
            ("round-robin", [f"/api/v1/config/{n}" for n in tenant.names(1000)]),
        ):
            wrk(server.url, tenant.token, paths, 2)  # warm: every namespace cached
            cpu = server.cpu()
            rps, p50, p99, total = wrk(server.url, tenant.token, paths, seconds)
            found[label] = (rps, p50, p99, (server.cpu() - cpu) / total * 1e6)
    return found


def creations(tenant: Tenant, count: int = 50) -> tuple[float, float, float]:
    """POST /namespaces one after another: p50 and p99 ms, CPU ms per creation."""
    with serving(tenant) as server:
        headers = login(server, tenant)
        timings = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            http.post("/api/v1/namespaces", json={"name": "warm"}).raise_for_status()
            cpu = server.cpu()
            for i in range(count):
                started = time.perf_counter()
                http.post(
                    "/api/v1/namespaces", json={"name": f"svc-{i % 10:04d}/new-{i}"}
                ).raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
            used = server.cpu() - cpu
    return percentile(timings, 50), percentile(timings, 99), used / count * 1000


def _write_loop(
    url: str, token: str, namespace_id: str, rate: float, stop: threading.Event, done: list[int]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        next_at = time.perf_counter()
        while not stop.is_set():
            http.put(
                f"/api/v1/namespaces/{namespace_id}/configs/seq",
                json={"value": done[0], "value_type": "number"},
            ).raise_for_status()
            done[0] += 1
            next_at += 1 / rate
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)


def reads_under_writes(
    tenant: Tenant, seconds: int, rate: float, writers: int = 2
) -> tuple[float, float, float]:
    """Reads/s of one namespace alone, then while ``writers`` change it; and writes/s."""
    with serving(tenant) as server:
        name = tenant.names(1)[0]
        path = [f"/api/v1/config/{name}"]
        headers = {"Authorization": f"Bearer {tenant.token}"}
        namespace = namespace_id(server, headers, name)
        wrk(server.url, tenant.token, path, 2, 16)
        alone = wrk(server.url, tenant.token, path, seconds, 16)[0]
        stop = threading.Event()
        counts = [[0] for _ in range(writers)]
        threads = [
            threading.Thread(
                target=_write_loop,
                args=(server.url, tenant.token, namespace, rate / writers, stop, counts[i]),
            )
            for i in range(writers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1)
        before = sum(c[0] for c in counts)
        started = time.perf_counter()
        under = wrk(server.url, tenant.token, path, seconds, 16)[0]
        written = (sum(c[0] for c in counts) - before) / (time.perf_counter() - started)
        stop.set()
        for thread in threads:
            thread.join()
    return alone, under, written


# --- Watchers -----------------------------------------------------------------------------------
# Read by one Go process (bench/watch_reader.go, built here; what the figures come from when Go
# is installed), or by Python asyncio client processes (--reader python), whose reading costs as
# much CPU as the server's fan-out on a 2-core machine, and so delays it.

READER_SOURCE = Path(__file__).with_name("watch_reader.go")


def watcher_process(port: int, path: str, token: str, count: int, conn: Any) -> None:
    _more_files()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        connected = [0, count]  # streams that sent their first state, of how many
        ready = asyncio.Event()
        seen: list[dict[int, float]] = [{} for _ in range(count)]
        tasks = []
        for i in range(count):
            stream = watch_stream(port, path, token, ready, seen[i], connected)
            tasks.append(asyncio.create_task(stream))
            if i % 100 == 99:
                await asyncio.sleep(0.02)  # do not flood the accept queue
        while connected[0] < count:
            failed = [t for t in tasks if t.done()]
            if failed:
                conn.send(f"failed: {failed[0].exception()!r}")
                return
            await asyncio.sleep(0.05)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "done"
        conn.send(seen)
        for task in tasks:
            task.cancel()

    asyncio.run(main())


class Readers:
    """``count`` streams read by client processes: started, ready, then what each saw."""

    def __init__(self, reader: str, port: int, count: int, **target: str) -> None:
        self.pids: list[int] = []
        self.go: subprocess.Popen[str] | None = None
        self.pipes: list[Any] = []
        if reader == "go":
            arguments = [f"-{name}={value}" for name, value in target.items()]
            self.go = subprocess.Popen(
                [go_reader(), f"-addr=127.0.0.1:{port}", f"-n={count}", *arguments],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=_more_files,
            )
            self.pids.append(self.go.pid)
            return
        context = multiprocessing.get_context("spawn")
        clients = 4
        for index in range(clients):
            parent_end, child_end = context.Pipe()
            share = count // clients + (1 if index < count % clients else 0)
            process = context.Process(
                target=watcher_process,
                args=(port, target["path"], target["token"], share, child_end),
                daemon=True,
            )
            process.start()
            self.pids.append(process.pid or 0)
            self.pipes.append(parent_end)

    def ready(self) -> None:
        messages = [self.go.stdout.readline().strip()] if self.go and self.go.stdout else []
        messages += [pipe.recv() for pipe in self.pipes]
        for message in messages:
            if message != "ready":
                self.stop()
                raise SystemExit(f"the watchers did not start: {message}")

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def seen(self) -> list[dict[int, float]]:
        """For each stream, when each sequence number arrived (Unix seconds)."""
        if self.go is not None:
            out, _ = self.go.communicate("done\n", timeout=120)
            return [
                {int(s): int(at) / 1e9 for s, at in (pair.split(":") for pair in line.split())}
                for line in out.splitlines()
            ]
        found: list[dict[int, float]] = []
        for pipe in self.pipes:
            pipe.send("done")
        for pipe in self.pipes:
            found.extend(pipe.recv())
        return found

    def stop(self) -> None:
        if self.go is not None and self.go.poll() is None:
            self.go.kill()
            self.go.wait()


_built: list[str] = []


def go_reader() -> str:
    """bench/watch_reader.go, built once per run into a temporary directory."""
    if not _built:
        target = Path(tempfile.mkdtemp(prefix="konfig-reader-")) / "watch_reader"
        subprocess.run(
            ["go", "build", "-o", str(target), str(READER_SOURCE)],
            check=True,
            env=os.environ | {"GO111MODULE": "off"},
        )
        _built.append(str(target))
    return _built[0]


def fan_out(
    tenant: Tenant, watchers: int, writes: int = 10, reader: str = "go"
) -> dict[str, float]:
    with serving(tenant) as server:
        headers = {"Authorization": f"Bearer {tenant.token}"}
        name = tenant.names(1)[0]
        namespace = namespace_id(server, headers, name)
        seq_url = f"{server.url}/api/v1/namespaces/{namespace}/configs/seq"
        httpx.put(seq_url, headers=headers, json={"value": 0, "value_type": "number"})
        port = int(server.url.rsplit(":", 1)[1])
        time.sleep(0.5)
        idle_before = server.rss()
        path = f"/api/v1/config/{name}/events"
        readers = Readers(reader, port, watchers, path=path, token=tenant.token)
        try:
            readers.ready()
            time.sleep(1)
            idle_after = server.rss()
            with httpx.Client(headers=headers, timeout=60) as http:

                def put(seq: int) -> None:
                    body = {"value": seq, "value_type": "number"}
                    http.put(seq_url, json=body).raise_for_status()

                found = _pushes(server.proc.pid, readers, put, watchers, writes)
        finally:
            readers.stop()
    return found | {"kib_per_watcher": (idle_after - idle_before) / watchers}


def _pushes(pid: int, readers: Readers, put: Any, watchers: int, writes: int) -> dict[str, float]:
    """``writes`` changes, one at a time, after one unmeasured: latency from each write's answer
    to each stream's receipt, events missed, and the server's and the readers' CPU."""
    answered: dict[int, float] = {}
    put(-1)
    time.sleep(1)  # one unmeasured change: statements compiled, pools filled
    cpu, reading = cpu_seconds(pid), readers.cpu()
    split = _split(pid)
    for seq in range(1, writes + 1):
        put(seq)
        answered[seq] = time.time()
        time.sleep(max(0.5, watchers / 5000))
    time.sleep(2)
    cpu = cpu_seconds(pid) - cpu  # the writes, the fan-out, and heartbeats (a few)
    reading = readers.cpu() - reading
    user, system = (b - a for a, b in zip(split, _split(pid), strict=True))
    latencies, missed = [], 0
    for watcher in readers.seen():
        for seq, at in answered.items():
            arrived = watcher.get(seq)
            if arrived is None:
                missed += 1
            else:
                latencies.append((arrived - at) * 1000)
    events = max(1, len(latencies))
    return {
        "p50": percentile(latencies, 50) if latencies else float("nan"),
        "p99": percentile(latencies, 99) if latencies else float("nan"),
        "max": max(latencies, default=float("nan")),
        "missed": missed,
        "cpu_us_per_event": cpu / events * 1e6,
        "reader_us_per_event": reading / events * 1e6,
        "system_share": system / max(1e-9, user + system),
    }


def etcd_fan_out(watchers: int, writes: int = 10) -> dict[str, float]:
    """The reference: the same pushes through etcd's HTTP gateway (one etcd, its own data)."""
    datadir = tempfile.mkdtemp(prefix="konfig-etcd-")
    port, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    etcd = subprocess.Popen(
        [
            "etcd",
            f"--data-dir={datadir}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_more_files,
    )
    try:
        with httpx.Client(base_url=url, timeout=60) as http:

            def put(seq: int) -> None:
                body = {"key": "c2Vx", "value": base64.b64encode(str(seq).encode()).decode()}
                http.post("/v3/kv/put", json=body).raise_for_status()

            deadline = time.monotonic() + 30
            while True:
                try:
                    put(0)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise SystemExit("etcd did not start") from None
                    time.sleep(0.1)
            time.sleep(0.5)
            idle_before = rss_kib(etcd.pid)
            readers = Readers("go", port, watchers, kind="etcd", key="seq")
            try:
                readers.ready()
                time.sleep(1)
                idle_after = rss_kib(etcd.pid)
                found = _pushes(etcd.pid, readers, put, watchers, writes)
            finally:
                readers.stop()
    finally:
        etcd.terminate()
        etcd.wait(15)
        shutil.rmtree(datadir, ignore_errors=True)  # 60 MB of preallocated log each run
    return found | {"kib_per_watcher": (idle_after - idle_before) / watchers}


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=10_000)
    parser.add_argument("--watchers", default="1000,5000,10000")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--write-rate", type=float, default=120)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument(
        "--reader",
        choices=("go", "python"),
        default="go" if shutil.which("go") else "python",
        help="what reads the watchers' streams (go: bench/watch_reader.go, and etcd beside)",
    )
    args = parser.parse_args()
    if args.namespaces <= 10:
        parser.error("--namespaces: more than the small tenant's 10")
    only = set(args.only.split(","))
    _more_files()

    workdir = Path(tempfile.mkdtemp(prefix="konfig-scale-"))
    small, big = build(workdir, 10), build(workdir, args.namespaces)
    print(f"konfig scale bench, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    print(
        f"built: {small.size} namespaces in {small.build_seconds:.1f} s, {big.size} in "
        f"{big.build_seconds:.1f} s ({big.size / big.build_seconds:.0f} namespaces/s, "
        "konfig import-tree)"
    )
    print("servers run from bytecode, cached in the bench's folder as an installed konfig has it")
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, at_small: str, at_big: str, target: str = "") -> None:
        rows.append((label, at_small, at_big, target))
        print(f"  {label:<44} {at_small:>20} {at_big:>20}  {target}", flush=True)

    print(f"  {'':<44} {f'{small.size} namespaces':>20} {f'{big.size} namespaces':>20}")
    if "startup" in only:
        starts = [startup(t) for t in (small, big)]
        row(
            "start-up to /health (wall s, CPU s)",
            *(f"{w:.2f} s, {c:.2f} s CPU" for w, c, _, _ in starts),
            "target <= 1 s",
        )
        row(
            "start-up to /ready (wall s, CPU s)",
            *(f"{w:.2f} s, {c:.2f} s CPU" for _, _, w, c in starts),
            "every route in",
        )
    if "cold" in only:
        cold = [cold_reads(t) for t in (small, big)]
        row("cold read p50 / p99 (ms)", *(f"{a:.1f} / {b:.1f}" for a, b, _ in cold))
        row(
            "cold read CPU per request (ms)",
            *(f"{c:.2f}" for _, _, c in cold),
            f"ratio {cold[1][2] / cold[0][2]:.2f}x (target <= 2x)",
        )
    if "warm" in only:
        warm = [warm_reads(t, args.duration) for t in (small, big)]
        for label in ("one namespace", "round-robin"):
            row(
                f"warm reads, {label} (req/s, CPU us/req)",
                *(f"{w[label][0]:.0f}, {w[label][3]:.0f} us" for w in warm),
            )
        ratio = warm[1]["round-robin"][0] / warm[1]["one namespace"][0]
        row("  round-robin over 1,000 / one namespace", "", f"{ratio:.2f}x", "target >= 0.5x")
    if "create" in only:
        made = [creations(t) for t in (small, big)]
        row("namespace creation p50 / p99 (ms)", *(f"{a:.1f} / {b:.1f}" for a, b, _ in made))
        row(
            "namespace creation CPU (ms)",
            *(f"{c:.1f}" for _, _, c in made),
            f"ratio {made[1][2] / made[0][2]:.2f}x (target <= 2x)",
        )
    if "writes" in only:
        alone, under, written = reads_under_writes(small, args.duration, args.write_rate)
        row("reads of one namespace alone (req/s)", f"{alone:.0f}", "")
        row(
            f"  under {written:.0f} writes/s to it (req/s)",
            f"{under:.0f}",
            "",
            f"{under / alone:.2f}x (target >= 0.5x)",
        )
    if "watchers" in only:
        print(f"  change push, streams read by the {args.reader} reader")
        for count in (int(n) for n in args.watchers.split(",")):
            found = fan_out(small, count, reader=args.reader)
            row(
                f"{count} SSE watchers: p50 / p99 / max (ms)",
                f"{found['p50']:.0f} / {found['p99']:.0f} / {found['max']:.0f}",
                "",
                f"missed {found['missed']:.0f}, {found['kib_per_watcher']:.1f} KiB/watcher, "
                f"server CPU {found['cpu_us_per_event']:.0f} us/event "
                f"({found['system_share']:.0%} in the kernel), "
                f"reader {found['reader_us_per_event']:.0f} us/event "
                "(target p99 <= 100 ms, <= 10 KiB)",
            )
            if args.reader == "go" and shutil.which("etcd"):
                etcd = etcd_fan_out(count)
                row(
                    f"  etcd gateway, {count} watchers (same reader)",
                    f"{etcd['p50']:.0f} / {etcd['p99']:.0f} / {etcd['max']:.0f}",
                    "",
                    f"missed {etcd['missed']:.0f}, {etcd['kib_per_watcher']:.1f} KiB/watcher, "
                    f"etcd CPU {etcd['cpu_us_per_event']:.0f} us/event, "
                    f"reader {etcd['reader_us_per_event']:.0f} us/event",
                )
            # The machine's speed right after (a loaded machine slows everything alike).
            row("  reference: a 1M-step Python loop (ms)", f"{python_loop_ms():.0f}", "")
    print("\nsummary")
    for label, at_small, at_big, target in rows:
        print(f"| {label} | {at_small} | {at_big} | {target} |")


if __name__ == "__main__":
    main()
