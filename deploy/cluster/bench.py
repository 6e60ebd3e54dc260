"""Resolved reads through nginx: N replicas against 1, with wrk (prints figures, never fails).

    python -m deploy.cluster.bench [--replicas 3,1] [--connections 32] [--duration 10]

Each round starts a cluster (``deploy.cluster.run``) on a throwaway PostgreSQL database and a
Redis prefix of its own, seeds a namespace of 50 keys (about 2 KB of JSON) under a parent, and
runs ``wrk -t1 -cC -dDs --latency`` with a read token against nginx. The read-path rate limit is
lifted for the run. Prints requests/s, p50 and p99, and the load average before each round:
on a shared machine, read the figures with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx

from deploy.cluster.run import Cluster

PG_ADMIN = os.environ.get("KONFIG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("KONFIG_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "BenchPassword123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def seed(url: str) -> str:
    """A tenant, ``bench`` and ``bench/production`` with 50 keys, and a read token for them."""
    with httpx.Client(base_url=url, timeout=30) as http:
        email = "bench@example.com"
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
        for i in range(50):
            namespace = ids["bench" if i % 5 == 0 else "bench/production"]
            http.put(
                f"/api/v1/namespaces/{namespace}/configs/key_{i:02d}",
                headers=headers,
                json={"value": f"value-{i}-" + "x" * 24, "value_type": "string"},
            ).raise_for_status()
        account = http.post("/api/v1/service-accounts", headers=headers, json={"name": "b"})
        token = http.post(
            "/api/v1/tokens",
            headers=headers,
            json={
                "name": "bench",
                "service_account_id": account.json()["id"],
                "scopes": [
                    # a resolved read needs its ancestors too
                    {"namespaces": "bench", "permissions": ["read", "secrets"]},
                    {"namespaces": "bench/**", "permissions": ["read", "secrets"]},
                ],
            },
        )
        token.raise_for_status()
        return str(token.json()["token"])


def wrk(url: str, token: str, connections: int, duration: int) -> dict[str, str]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            f"{url}/api/v1/config/bench/production",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", out)}
    figures |= {p: re.search(rf"^\s+{p}%\s+(\S+)", out, re.M) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    found = {k: (m[1] if m else "?") for k, m in figures.items()}
    found["non2xx"] = errors[1] if errors else "0"
    return found


def round_(replicas: int, connections: int, duration: int) -> None:
    name = f"konfig_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    prefix = f"konfig-bench-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KONFIG_", "CLUSTER_"))}
    env |= {
        "KONFIG_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{name}",
        "KONFIG_REDIS_URL": REDIS,
        "KONFIG_REDIS_KEY_PREFIX": prefix,
        "KONFIG_NOTIFY_CHANNEL": prefix.replace("-", "_"),
        "KONFIG_SECRET_KEY": "bench-secret-key-that-is-long-enough-for-hs256",
        "KONFIG_READ_RATE_LIMIT_PER_MINUTE": "100000000",
        "KONFIG_BACKUP_DEBOUNCE_SECONDS": "0",
        "KONFIG_LOG_LEVEL": "WARNING",
    }
    run_dir = Path(tempfile.mkdtemp(prefix="konfig-bench-cluster-"))
    from konfig.security.crypto import new_key_line

    env["KONFIG_ENCRYPTION_KEYS"] = new_key_line()
    cluster = Cluster(
        run_dir=run_dir,
        listen=f"127.0.0.1:{free_port()}",
        ports=[free_port() for _ in range(replicas)],
        env=env,
    )
    try:
        cluster.start()
        token = seed(cluster.url)
        wrk(cluster.url, token, connections, 2)  # warm every replica's cache and connections
        load = os.getloadavg()
        found = wrk(cluster.url, token, connections, duration)
        print(
            f"{replicas} replica(s), {connections} connections, {duration} s: "
            f"{found['rps']} req/s, p50 {found['50']}, p99 {found['99']}, "
            f"non-2xx {found['non2xx']}  (load average before: "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
            flush=True,
        )
    finally:
        cluster.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="3,1")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; wrk -t1 -c{args.connections} -d{args.duration}s via nginx")
    for replicas in (int(n) for n in args.replicas.split(",")):
        round_(replicas, args.connections, args.duration)


if __name__ == "__main__":
    main()
