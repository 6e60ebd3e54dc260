"""Benchmark of change push: 1,000 watchers on 2 Konfig processes on PostgreSQL (prints figures).

Starts two `konfig serve` processes on one fresh PostgreSQL database, creates `watch` and ten
namespaces under it, and opens 1,000 server-sent-event streams (`/api/v1/config/…/events`),
half on each process, from two client processes. After one unmeasured write through each
process (a running service is warm), it writes the parent's `seq` key 20 times, alternately
through each process, and measures for every watcher the time from the write being sent to its
event arriving: changes written through the other process travel through LISTEN/NOTIFY.
Prints p50/p99/max, how many events were missed (target: none, p99 <= 50 ms), and the
servers' memory per idle watcher. Never fails on speed.

    python bench/watch.py [--watchers 1000] [--writes 20] [--interval 0.25]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from read_path import python_loop_ms  # bench/read_path.py

PASSWORD = "BenchPassword123"
PG_ADMIN = os.environ.get("KONFIG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CHILDREN = 10
_SEQ = re.compile(rb'"seq":(\d+)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def start_servers(database_url: str, workdir: Path) -> list[tuple[subprocess.Popen[bytes], int]]:
    from konfig.security.crypto import new_key_line

    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATABASE_URL": database_url,
        "KONFIG_SECRET_KEY": "watch-bench-secret-key-that-is-long-enough",
        "KONFIG_ENCRYPTION_KEYS": new_key_line(),
    }
    servers = []
    for name in ("a", "b"):
        port = free_port()
        data = workdir / name
        data.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "konfig", "serve"],
            env=env | {"KONFIG_DATA_DIR": str(data), "KONFIG_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("konfig serve did not start")
            time.sleep(0.1)
        servers.append((proc, port))
    return servers


def seed(port: int) -> dict[str, Any]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        email = "owner@watch.example.com"
        http.post(
            "/api/v1/auth/register", json={"name": "watch", "email": email, "password": PASSWORD}
        ).raise_for_status()
        login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        parent = http.post("/api/v1/namespaces", headers=headers, json={"name": "watch"}).json()
        for i in range(CHILDREN):
            child = http.post(
                "/api/v1/namespaces", headers=headers, json={"name": f"watch/svc-{i:02d}"}
            ).json()
            http.put(
                f"/api/v1/namespaces/{child['id']}/configs/name",
                headers=headers,
                json={"value": f"svc-{i:02d}"},
            ).raise_for_status()
        http.put(
            f"/api/v1/namespaces/{parent['id']}/configs/seq",
            headers=headers,
            json={"value": 0, "value_type": "number"},
        ).raise_for_status()
        account = http.post(
            "/api/v1/service-accounts", headers=headers, json={"name": "watchers"}
        ).json()
        token = http.post(
            "/api/v1/tokens",
            headers=headers,
            json={
                "name": "watchers",
                "service_account_id": account["id"],
                "scopes": [
                    # a resolved read needs its ancestors too
                    {"namespaces": "watch", "permissions": ["read", "secrets"]},
                    {"namespaces": "watch/**", "permissions": ["read", "secrets"]},
                ],
            },
        ).json()["token"]
        return {"headers": headers, "parent": parent["id"], "token": token}


# --- The watchers (in client processes) --------------------------------------------------------


async def _watch(
    port: int,
    path: str,
    token: str,
    ready: asyncio.Event,
    seen: dict[int, float],
    counter: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    first = True
    while True:  # chunked transfer encoding: one chunk per event or heartbeat
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)
        now = time.time()
        match = _SEQ.search(chunk)
        if match:
            seen.setdefault(int(match.group(1)), now)
            if first:
                first = False
                counter[0] += 1
                if counter[0] == counter[1]:
                    ready.set()


def client_process(
    ports: list[int],
    count: int,
    token: str,
    offset: int,
    conn: Any,  # multiprocessing pipe
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        ready = asyncio.Event()
        counter = [0, count]
        seen: list[dict[int, float]] = [{} for _ in range(count)]
        tasks = []
        for i in range(count):
            port = ports[(offset + i) % len(ports)]
            path = f"/api/v1/config/watch/svc-{(offset + i) % CHILDREN:02d}/events"
            tasks.append(asyncio.create_task(_watch(port, path, token, ready, seen[i], counter)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # do not flood the accept queues
        await asyncio.wait_for(ready.wait(), timeout=120)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "done"
        conn.send(seen)
        for task in tasks:
            task.cancel()

    asyncio.run(main())


# --- Main --------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="konfig-watch-"))
    pg_name = f"konfig_watch_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg(f'CREATE DATABASE "{pg_name}"'))
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    clients: list[tuple[multiprocessing.Process, Any]] = []
    try:
        servers = start_servers(PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}", workdir)
        ports = [port for _, port in servers]
        seeded = seed(ports[0])
        # Warm both servers (imports, caches, pools) before taking their memory.
        for port in ports:
            for i in range(CHILDREN):
                httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/config/watch/svc-{i:02d}",
                    headers={"Authorization": f"Bearer {seeded['token']}"},
                ).raise_for_status()
        time.sleep(1)
        before = [rss_kib(proc.pid) for proc, _ in servers]

        context = multiprocessing.get_context("spawn")
        per_client = [args.watchers // 2, args.watchers - args.watchers // 2]
        for index, count in enumerate(per_client):
            parent_end, child_end = context.Pipe()
            proc = context.Process(
                target=client_process,
                args=(ports, count, seeded["token"], index, child_end),
                daemon=True,
            )
            proc.start()
            clients.append((proc, parent_end))
        for _, pipe in clients:
            assert pipe.recv() == "ready"
        time.sleep(2)  # idle
        after = [rss_kib(proc.pid) for proc, _ in servers]
        print(f"{args.watchers} watchers connected ({args.watchers // 2} per process)")

        # One unmeasured write through each process first, as a running service has had:
        # the first change compiles statements and fills pools (negative values: not counted).
        with httpx.Client(timeout=30) as http:
            for warm, port in enumerate(ports, start=1):
                http.put(
                    f"http://127.0.0.1:{port}/api/v1/namespaces/{seeded['parent']}/configs/seq",
                    headers=seeded["headers"],
                    json={"value": -warm, "value_type": "number"},
                ).raise_for_status()
                time.sleep(args.interval)
        print("warm-up: one unmeasured write through each process")

        cpu_before = sum(cpu_seconds(proc.pid) for proc, _ in servers)
        sent: dict[int, float] = {}
        returned: dict[int, float] = {}
        write_ms: list[float] = []
        with httpx.Client(timeout=30) as http:
            for seq in range(1, args.writes + 1):
                port = ports[seq % 2]
                url = f"http://127.0.0.1:{port}/api/v1/namespaces/{seeded['parent']}/configs/seq"
                sent[seq] = time.time()
                answer = http.put(
                    url, headers=seeded["headers"], json={"value": seq, "value_type": "number"}
                )
                returned[seq] = time.time()
                write_ms.append((returned[seq] - sent[seq]) * 1000)
                answer.raise_for_status()
                time.sleep(args.interval)
        time.sleep(3)
        cpu_used = sum(cpu_seconds(proc.pid) for proc, _ in servers) - cpu_before
        seen: list[dict[int, float]] = []
        for _, pipe in clients:
            pipe.send("done")
        for _, pipe in clients:
            seen.extend(pipe.recv())

        latencies = []
        after_return = []
        same, other = [], []
        missed = 0
        for index, watcher in enumerate(seen):
            client = 0 if index < per_client[0] else 1
            position = index if client == 0 else index - per_client[0]
            watcher_port = ports[(client + position) % 2]
            for seq, at in sent.items():
                arrived = watcher.get(seq)
                if arrived is None:
                    missed += 1
                    continue
                ms = (arrived - at) * 1000
                latencies.append(ms)
                after_return.append((arrived - returned[seq]) * 1000)
                (same if ports[seq % 2] == watcher_port else other).append(ms)

        expected = args.watchers * args.writes
        print(f"{args.writes} writes of the parent namespace, {args.interval}s apart")
        print(
            f"write request (PUT, commit, NOTIFY): p50 {statistics.median(write_ms):.1f} ms, "
            f"max {max(write_ms):.1f} ms"
        )
        print(
            f"write-to-event latency over {len(latencies)} events: p50 "
            f"{percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
            f"max {max(latencies):.1f} ms (target p99 <= 50 ms)"
        )
        for label, values in (
            ("written on the watcher's process", same),
            ("through NOTIFY", other),
        ):
            if values:
                print(
                    f"  {label}: p50 {percentile(values, 50):.1f} ms, "
                    f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms"
                )
        slowest = {
            seq: max((w[seq] - at) * 1000 for w in seen if seq in w) for seq, at in sent.items()
        }
        print(
            "  the last watcher to hear each write, in order (ms): "
            + " ".join(f"{slowest[seq]:.0f}" for seq in sorted(slowest))
        )
        print(
            "  counted from the write's answer instead (negative: the event came first): "
            f"p50 {percentile(after_return, 50):.1f} ms, p99 {percentile(after_return, 99):.1f} ms"
        )
        print(
            f"server CPU: {1000 * cpu_used / args.writes:.0f} ms per write, both processes "
            f"together ({1000 * 1000 * cpu_used / expected:.0f} us per event delivered)"
        )
        print(f"missed: {missed} of {expected} (target 0)")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
        print(f"speed of this machine now: {python_loop_ms():.0f} ms for a 1M-step Python loop")
        grown = sum(after) - sum(before)
        print(
            f"server memory: {sum(before) / 1024:.0f} MiB before, {sum(after) / 1024:.0f} MiB "
            f"with the watchers idle: {grown / args.watchers:.1f} KiB per idle watcher"
        )
    finally:
        for proc, _ in clients:
            proc.terminate()
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
