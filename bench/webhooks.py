"""Webhook benchmarks. Prints figures; never passes or fails on time.

    .venv/bin/python bench/webhooks.py [--backend sqlite|postgres] [--seconds 10]

Against one `konfig serve` (1 uvicorn worker; SQLite, or PostgreSQL in a throwaway database on
KONFIG_BENCH_PG_URL, or --database-url) in its own process, with receivers in this process (a
minimal asyncio HTTP/1.1 server answering 200 at once):

1. fan-out: one commit to a namespace 100 endpoints subscribe to; for each receipt, the time
   from the write's answer to the receipt; p50/p99 over --commits commits (target p99 250 ms);
2. sustained: 200 commits/s or a little more offered for --seconds into a namespace 10
   endpoints subscribe to, paced by `wrk` (44 connections, 200 ms between a connection's
   writes: at most 220/s, less as answers take longer); the queue depth
   (konfig_webhook_queue_depth on /metrics) each second, and when the last receipt came;
3. the write path with 10 webhooks configured against none, in the same run: `wrk` PUTs
   (8 connections, --seconds each) into a tenant with no webhook and one with 10, alternated
   A B A B … (--rounds of each); medians and the ratio (target >= 0.90).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import read_path  # bench/read_path.py: free_port, wait_for, machine speed
from writes import PUT_SCRIPT, database

API = "/api/v1"
PASSWORD = "SecurePassword123"


class Receivers:
    """One asyncio HTTP/1.1 server; each path is an endpoint; records (path, monotonic time,
    webhook-id) for every request."""

    def __init__(self) -> None:
        self.receipts: list[tuple[str, float, str]] = []
        self.arrived = asyncio.Event()
        self.port = read_path.free_port()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.receipts.append((path, time.monotonic(), headers.get("webhook-id", "")))
                self.arrived.set()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def wait(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.receipts) < count and time.monotonic() < deadline:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=1)
            except TimeoutError:
                pass


async def tenant(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    email = f"{name}@example.com"
    await http.post(
        f"{API}/auth/register", json={"name": name, "email": email, "password": PASSWORD}
    )
    login = await http.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def namespace(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    made = await http.post(f"{API}/namespaces", headers=headers, json={"name": name})
    return str(made.json()["id"])


async def subscribe(
    http: httpx.AsyncClient, headers: dict[str, str], url: str, pattern: str
) -> None:
    made = await http.post(
        f"{API}/webhooks",
        headers=headers,
        json={"url": url, "events": ["config.changed"], "namespaces": pattern},
    )
    assert made.status_code == 201, made.text


def cpu_seconds(pid: int) -> float:
    """The server's CPU time so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fan_out(http: httpx.AsyncClient, receivers: Receivers, commits: int) -> None:
    headers = await tenant(http, "fanout")
    ns = await namespace(http, headers, "fanout")
    for n in range(100):
        await subscribe(http, headers, receivers.url(f"fanout/{n}"), "fanout")
    await asyncio.sleep(1)
    latencies: list[float] = []
    for n in range(commits):
        before = len(receivers.receipts)
        answer = await http.put(
            f"{API}/namespaces/{ns}/configs/key", headers=headers, json={"value": str(n)}
        )
        answered = time.monotonic()
        assert answer.status_code in (200, 201), answer.text
        await receivers.wait(before + 100)
        latencies += [(at - answered) * 1000 for _, at, _ in receivers.receipts[before:]]
        await asyncio.sleep(0.05)
    print(
        f"  fan-out, 1 commit to 100 endpoints, {commits} commits ({len(latencies)} receipts): "
        f"answer→receipt p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )


async def queue_depth(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(r"^konfig_webhook_queue_depth (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


# Each connection sends a write, waits for its answer, then waits DELAY ms: 44 connections
# with 200 ms between writes offer up to 220 writes/s (less as answers take longer: 200 at
# 20 ms an answer).
PACED_SCRIPT = (
    PUT_SCRIPT
    + """
delay = function()
  return 200
end
"""
)
PACED_CONNECTIONS = 44


async def sustained(
    http: httpx.AsyncClient,
    base: str,
    receivers: Receivers,
    seconds: int,
    workdir: Path,
    pid: int,
) -> None:
    """Paced writes from wrk (another process, so the load generator is not the limit)."""
    headers = await tenant(http, "sustained")
    ns = await namespace(http, headers, "sustained")
    for n in range(10):
        await subscribe(http, headers, receivers.url(f"sustained/{n}"), "sustained")
    before = len(receivers.receipts)
    script = workdir / "paced.lua"
    script.write_text(PACED_SCRIPT)
    run = asyncio.create_task(
        asyncio.to_thread(
            wrk_puts, base, ns, headers, seconds, script, connections=PACED_CONNECTIONS
        )
    )
    depths: list[float] = []
    cpu = cpu_seconds(pid)
    while not run.done():
        await asyncio.sleep(1)
        depths.append(await queue_depth(http))
    rate, sent = run.result()
    drained_at = time.monotonic()
    await receivers.wait(before + sent * 10, timeout=120)
    drain = time.monotonic() - drained_at
    cpu = cpu_seconds(pid) - cpu
    got = len(receivers.receipts) - before
    unique = len({webhook_id for _, _, webhook_id in receivers.receipts[before:]})
    print(
        f"  sustained, paced writes x 10 endpoints for {seconds} s: {rate:.0f} commits/s "
        f"({sent} writes), {got} receipts ({unique} distinct) of {sent * 10} or more; the last "
        f"arrived {drain:.1f} s after the last write; server CPU {cpu * 1000 / sent:.2f} ms "
        f"a commit, its sends included"
    )
    print(f"  queue depth each second: {' '.join(f'{d:.0f}' for d in depths)}")


def wrk_puts(
    base: str,
    ns: str,
    headers: dict[str, str],
    seconds: int,
    script: Path,
    connections: int = 8,
) -> tuple[float, int]:
    """Writes/s and how many writes wrk made."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            "-H",
            f"Authorization: {headers['Authorization']}",
            "-H",
            "Content-Type: application/json",
            f"{base}{API}/namespaces/{ns}/configs/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"writes answered errors: {out.strip().splitlines()[-3:]}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


async def write_path(
    http: httpx.AsyncClient,
    base: str,
    receivers: Receivers,
    seconds: int,
    workdir: Path,
    rounds: int,
) -> None:
    plain = await tenant(http, "plain")
    plain_ns = await namespace(http, plain, "plain")
    hooked = await tenant(http, "hooked")
    hooked_ns = await namespace(http, hooked, "hooked")
    for n in range(10):
        await subscribe(http, hooked, receivers.url(f"hooked/{n}"), "hooked")
    script = workdir / "put.lua"
    script.write_text(PUT_SCRIPT)
    rates: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for label, headers, ns in (("none", plain, plain_ns), ("10 webhooks", hooked, hooked_ns)):
            while await queue_depth(http) > 0:  # each round starts with an empty queue
                await asyncio.sleep(0.5)
            rate, _ = await asyncio.to_thread(wrk_puts, base, ns, headers, seconds, script)
            rates[label].append(rate)
    none, hooked_rate = statistics.median(rates["none"]), statistics.median(rates["10 webhooks"])
    for label, values in rates.items():
        shown = " ".join(f"{v:.0f}" for v in values)
        print(f"  writes/s, {label}: {shown} (median {statistics.median(values):.0f})")
    print(f"  ratio, 10 webhooks / none: {hooked_rate / none:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default="", help="instead of --backend's database")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="fan-out,sustained,writes")
    args = parser.parse_args()
    print(
        f"speed of this machine now: {read_path.python_loop_ms():.0f} ms for a 1M-step Python loop"
    )
    receivers = Receivers()
    await receivers.start()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.database_url or args.backend == "sqlite":
            await serve(args, receivers, workdir, args.database_url)
        else:
            async with database("postgres", workdir) as url:
                await serve(args, receivers, workdir, url)


async def serve(
    args: argparse.Namespace, receivers: Receivers, workdir: Path, database_url: str
) -> None:
    port = read_path.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATA_DIR": str(workdir / "data"),
        "KONFIG_PORT": str(port),
        "KONFIG_RATE_LIMIT_PER_MINUTE": str(10**9),
        "KONFIG_WEBHOOK_ALLOW_HTTP": "true",
        "KONFIG_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "KONFIG_BACKUP_DEBOUNCE_SECONDS": "0",
        **(
            {"KONFIG_WEBHOOK_POLL_SECONDS": os.environ["BENCH_POLL"]}
            if os.environ.get("BENCH_POLL")
            else {}
        ),
        "KONFIG_LOG_LEVEL": "WARNING",
        **(
            {"KONFIG_WEBHOOK_CONCURRENCY": os.environ["BENCH_SLOTS"]}
            if os.environ.get("BENCH_SLOTS")
            else {}
        ),
        **({"KONFIG_WEBHOOKS_ENABLED": "false"} if os.environ.get("BENCH_NO_WORKER") else {}),
    }
    if database_url:
        env["KONFIG_DATABASE_URL"] = database_url
    log = (workdir / "serve.log").open("wb")
    # BENCH_PROFILE=FILE: the server runs under cProfile, its figures written there at exit.
    profile = (
        ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if "BENCH_PROFILE" in env else []
    )
    proc = subprocess.Popen(
        [sys.executable, *profile, "-m", "konfig", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        read_path.wait_for(f"{base}/ready", proc, "konfig serve")
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            shown = database_url.rsplit("/", 1)[0] + "/…" if database_url else "SQLite"
            print(f"konfig serve, {shown}, 1 process (pid {proc.pid})")
            only = args.only.split(",")
            if "fan-out" in only:
                await fan_out(http, receivers, args.commits)
            if "sustained" in only:
                await sustained(http, base, receivers, args.seconds, workdir, proc.pid)
            if "writes" in only:
                await write_path(http, base, receivers, args.seconds, workdir, args.rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        lines = (workdir / "serve.log").read_text().splitlines()
        problems = [
            n
            for n, line in enumerate(lines)
            if "webhooks worker failed" in line or "Traceback" in line
        ]
        if problems:
            shown = "\n    ".join(lines[problems[0] : problems[0] + 30])
            print(f"  the server logged {len(problems)} problems, the first:\n    {shown}")


if __name__ == "__main__":
    asyncio.run(main())
