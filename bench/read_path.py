"""Benchmark of the read path against the framework ceiling and etcd (prints figures only).

Starts, on 127.0.0.1, each with one process:

- Konfig (`konfig serve`, 1 uvicorn worker) on SQLite, and another on PostgreSQL;
- a bare Starlette app returning the same prebuilt bytes (the framework ceiling);
- etcd (Debian etcd-server) serving the same value through its HTTP JSON gateway
  (`POST /v3/kv/range`, linearizable: etcd's default).

Seeds a namespace of 50 keys (about 3 KB of JSON) under a parent namespace, reads it with an API
token, and runs `wrk -t1 -cN -d10s --latency` against each candidate in turn (A B C D, A B C D,
...) for each connection count, three runs each; prints the median req/s, p50 and p99 and the
ratios. Never fails on speed.

    python bench/read_path.py [--duration 10] [--runs 3] [--connections 32,128]
                              [--backends sqlite,postgres] [--granian]

With ``--granian`` (``pip install granian`` first), the same app on SQLite under Granian's ASGI
server (one worker) is measured beside them: the candidate for ``konfig serve``'s server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "BenchPassword123"
PG_ADMIN = os.environ.get("KONFIG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent


def python_loop_ms() -> float:
    """A shared or throttled machine runs everything slower: compare runs by this figure (a
    quiet 2-CPU box here: about 40 ms)."""
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.perf_counter() - started) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up")


@dataclass
class Candidate:
    name: str
    url: str
    wrk_args: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    results: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)


# --- Konfig ------------------------------------------------------------------------------------


def seed(base: str) -> tuple[str, bytes]:
    """A tenant, `bench` (5 keys) under which `bench/production` (45 keys), a read token."""
    with httpx.Client(base_url=base, timeout=30) as http:
        email = "owner@bench.example.com"
        http.post(
            "/api/v1/auth/register", json={"name": "bench", "email": email, "password": PASSWORD}
        ).raise_for_status()
        login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ids = {}
        for name in ("bench", "bench/production"):
            made = http.post("/api/v1/namespaces", headers=headers, json={"name": name})
            made.raise_for_status()
            ids[name] = made.json()["id"]

        def put(namespace: str, key: str, value: Any, value_type: str) -> None:
            http.put(
                f"/api/v1/namespaces/{ids[namespace]}/configs/{key}",
                headers=headers,
                json={"value": value, "value_type": value_type},
            ).raise_for_status()

        for i in range(5):
            put("bench", f"shared_setting_{i:02d}", f"parent-value-{i:02d}-abcdefgh", "string")
        for i in range(38):
            put(
                "bench/production",
                f"service_setting_{i:02d}",
                f"value-{i:02d}-" + "x" * 40,
                "string",
            )
        for i in range(7):
            put("bench/production", f"limit_{i:02d}", 1000 + i, "number")
        account = http.post(
            "/api/v1/service-accounts", headers=headers, json={"name": "bench-reader"}
        ).json()
        token = http.post(
            "/api/v1/tokens",
            headers=headers,
            json={
                "name": "bench",
                "service_account_id": account["id"],
                "scopes": [
                    # a resolved read needs its ancestors too
                    {"namespaces": "bench", "permissions": ["read", "secrets"]},
                    {"namespaces": "bench/**", "permissions": ["read", "secrets"]},
                ],
            },
        ).json()["token"]
        body = http.get(
            "/api/v1/config/bench/production", headers={"Authorization": f"Bearer {token}"}
        )
        body.raise_for_status()
        return token, body.content


def start_konfig(
    name: str, workdir: Path, database_url: str | None, *, server: str = "uvicorn"
) -> tuple[Candidate, bytes]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATA_DIR": str(workdir / name),
        "KONFIG_PORT": str(port),
        # The per-token read budget (60,000 a minute by default) would answer most of a
        # 10-second run with 429s: a benchmark of the read path must not measure the limiter.
        "KONFIG_READ_RATE_LIMIT_PER_MINUTE": str(10**9),
        # Every answer writes its access line: in production's format, JSON (development's
        # default, the console renderer, is made for a person reading it, not for speed).
        "KONFIG_LOG_FORMAT": os.environ.get("KONFIG_LOG_FORMAT", "json"),
    }
    if database_url:
        env["KONFIG_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "konfig", "serve"]
    if server == "granian":  # the same app under Granian's ASGI server, one worker
        migrate = "from konfig.db.migrate import upgrade; from konfig.settings import get_settings"
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"{migrate}; import asyncio; "
                "asyncio.run(upgrade(get_settings().resolved_migration_url))",
            ],
            env=env,
            cwd=workdir,
            check=True,
            capture_output=True,
        )
        command = [
            str(Path(sys.executable).with_name("granian")),
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "konfig.ops.server:worker_app",
        ]
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/ready", proc, name)
    token, body = seed(base)
    candidate = Candidate(
        name,
        f"{base}/api/v1/config/bench/production",
        ["-H", f"Authorization: Bearer {token}"],
        [proc],
    )
    return candidate, body


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# --- References --------------------------------------------------------------------------------

STARLETTE_APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    BODY = Path(sys.argv[1]).read_bytes()

    async def config(request):
        return Response(BODY, media_type="application/json")

    app = Starlette(routes=[Route("/api/v1/config/{name:path}", config)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
                log_level="warning", proxy_headers=True)
    """
)


def start_starlette(workdir: Path, body: bytes) -> Candidate:
    port = free_port()
    (workdir / "body.json").write_bytes(body)
    (workdir / "bare_starlette.py").write_text(STARLETTE_APP)
    proc = subprocess.Popen(
        [sys.executable, str(workdir / "bare_starlette.py"), str(workdir / "body.json"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1/config/bench/production"
    wait_for(url, proc, "bare Starlette")
    assert httpx.get(url).content == body
    return Candidate("bare Starlette", url, [], [proc])


def start_etcd(workdir: Path, body: bytes) -> Candidate | None:
    if shutil.which("etcd") is None:
        print("etcd is not installed (Debian etcd-server): skipping that reference")
        return None
    client, peer = free_port(), free_port()
    proc = subprocess.Popen(
        [
            "etcd",
            "--name=bench",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=bench=http://127.0.0.1:{peer}",
            "--log-level=warn",
            "--logger=zap",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{client}"
    wait_for(f"{base}/health", proc, "etcd")
    key = base64.b64encode(b"bench/production").decode()
    put = httpx.post(
        f"{base}/v3/kv/put", json={"key": key, "value": base64.b64encode(body).decode()}
    )
    put.raise_for_status()
    got = httpx.post(f"{base}/v3/kv/range", json={"key": key}).json()
    assert base64.b64decode(got["kvs"][0]["value"]) == body
    script = workdir / "etcd_range.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = \'{{"key": "{key}"}}\'\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return Candidate("etcd gateway", f"{base}/v3/kv/range", ["-s", str(script)], [proc])


# --- wrk ---------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(candidate: Candidate, connections: int, duration: int) -> tuple[float, float, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    out = subprocess.run(
        [*args, *candidate.wrk_args, candidate.url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        # Not a figure of the read path: stop rather than print one.
        raise SystemExit(f"{candidate.name} answered errors: {out.strip().splitlines()[-3:]}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return rps, p50, p99


def median(results: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        statistics.median(r[2] for r in results),
    )


def report(candidates: list[Candidate], connections: list[int]) -> None:
    by_name = {c.name: c for c in candidates}
    for conns in connections:
        print(f"\n== wrk -t1 -c{conns}: median of {len(candidates[0].results[conns])} runs")
        print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for candidate in candidates:
            rps, p50, p99 = median(candidate.results[conns])
            print(f"{candidate.name:<22}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
        ceiling = by_name.get("bare Starlette")
        etcd = by_name.get("etcd gateway")
        for candidate in candidates:
            if not candidate.name.startswith("Konfig"):
                continue
            rps, _, p99 = median(candidate.results[conns])
            parts = []
            if etcd:
                e_rps, _, e_p99 = median(etcd.results[conns])
                parts.append(f"{rps / e_rps:.2f}x etcd rps (target >= 2)")
                parts.append(f"p99 {p99:.2f} vs etcd {e_p99:.2f} ms (target <=)")
            if ceiling:
                share = 100 * rps / median(ceiling.results[conns])[0]
                parts.append(f"{share:.0f}% of Starlette (target >= 60)")
            print(f"  {candidate.name}: " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="32,128")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--granian",
        action="store_true",
        help="also Konfig on SQLite under Granian (pip install granian) instead of uvicorn",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    connections = [int(c) for c in args.connections.split(",")]
    backends = args.backends.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="konfig-bench-"))
    pg_name = f"konfig_bench_{uuid.uuid4().hex[:8]}"
    candidates: list[Candidate] = []
    try:
        body = b""
        if "sqlite" in backends:
            konfig, body = start_konfig("Konfig (SQLite)", workdir, None)
            candidates.append(konfig)
        if args.granian:
            if not Path(sys.executable).with_name("granian").exists():
                raise SystemExit("--granian: install it first (pip install granian)")
            (workdir / "granian").mkdir()
            granian, _ = start_konfig(
                "Konfig on Granian", workdir / "granian", None, server="granian"
            )
            candidates.append(granian)
        if "postgres" in backends:
            asyncio.run(_pg(f'CREATE DATABASE "{pg_name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
            konfig, body = start_konfig("Konfig (PostgreSQL)", workdir, url)
            candidates.append(konfig)
        print(f"resolved config: {len(body)} bytes of JSON, {len(json.loads(body))} keys")
        candidates.append(start_starlette(workdir, body))
        etcd = start_etcd(workdir, body)
        if etcd:
            candidates.append(etcd)
        for candidate in candidates:  # warm up
            wrk(candidate, 32, 2)
        for conns in connections:
            for run in range(args.runs):
                for candidate in candidates:  # alternate: A B C D, A B C D, ...
                    result = wrk(candidate, conns, args.duration)
                    candidate.results.setdefault(conns, []).append(result)
                    print(
                        f"  c={conns} run {run + 1} {candidate.name:<20} "
                        f"{result[0]:>8.0f} req/s  p50 {result[1]:.2f} ms  p99 {result[2]:.2f} ms",
                        flush=True,
                    )
        report(candidates, connections)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
        print(f"speed of this machine now: {python_loop_ms():.0f} ms for a 1M-step Python loop")
    finally:
        for candidate in candidates:
            for proc in candidate.procs:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if "postgres" in backends:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
