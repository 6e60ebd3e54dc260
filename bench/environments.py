"""Across environments: comparison and search timings (prints figures only).

Starts `konfig serve` (SQLite, one process), seeds through the API:

- four environments of 500 keys each (``svc/env0`` … ``svc/env3``; a tenth of the values
  differ, some keys missing, some secrets), then times ``GET /api/v1/compare`` of the four,
  raw and resolved;
- ``--namespaces`` (10,000) namespaces of five keys, one in ten setting ``max_connections``
  (imported with `konfig import-tree`), then times ``GET /api/v1/search?q=max_connections``
  (the first search builds the index; the rest read it) and a search that matches nothing;

each ``--rounds`` times in turn, sequentially over one keep-alive connection, with the median
(p50) and p99 of each; the reference in the same run is ``GET /api/v1/namespaces/{id}``, one
small read through the same stack. Never fails on speed.

    python bench/environments.py [--namespaces 10000] [--rounds 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

PASSWORD = "BenchPassword123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    return env | {
        "KONFIG_DATA_DIR": str(workdir / "data"),
        "KONFIG_RATE_LIMIT_PER_MINUTE": str(10**9),  # the seeding is not what is measured
        "KONFIG_LOG_FORMAT": "json",
    }


def start(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = environment(workdir) | {"KONFIG_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "konfig", "serve"],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("konfig serve did not come up")


def owner(base: str) -> dict[str, str]:
    httpx.post(
        f"{base}/api/v1/auth/register",
        json={"name": "bench", "email": "bench@example.com", "password": PASSWORD},
    ).raise_for_status()
    answer = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def namespace(http: httpx.Client, name: str, entries: list[dict[str, object]]) -> str:
    made = http.post("/api/v1/namespaces", json={"name": name})
    made.raise_for_status()
    namespace_id = str(made.json()["id"])
    http.put(
        f"/api/v1/namespaces/{namespace_id}/document", json={"entries": entries}
    ).raise_for_status()
    return namespace_id


def seed_environments(http: httpx.Client) -> str:
    for env in range(4):
        entries: list[dict[str, object]] = []
        for key in range(500):
            if env == 3 and key % 50 == 0:
                continue  # missing in one environment
            value = key + (env if key % 10 == 0 else 0)  # a tenth differ
            entries.append(
                {"key": f"key_{key:03d}", "value": value, "value_type": "number"}
                if key % 25
                else {"key": f"key_{key:03d}", "value": f"s-{value}", "is_secret": True}
            )
        namespace(http, f"svc/env{env}", entries)
    return ",".join(f"svc/env{env}" for env in range(4))


def write_tree(tree: Path, count: int) -> None:
    """``count`` namespaces of five keys as a YAML tree (one in ten sets max_connections)."""
    for index in range(count):
        lines = [
            "entries:",
            "  - {key: timeout, value: 30, value_type: number}",
            f"  - {{key: db_host, value: db-{index}.internal, description: primary}}",
            "  - {key: log_level, value: info}",
            "  - {key: region, value: eu-west-1}",
            "  - {key: pool_size, value: 10, value_type: number}",
        ]
        if index % 10 == 0:
            lines.append("  - {key: max_connections, value: 50, value_type: number}")
        path = tree / "bench" / f"team{index % 100}" / f"service{index}" / "production.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def timed(label: str, call: Callable[[], httpx.Response], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label:<58} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms")
    return p50, p99


def login(base: str) -> dict[str, str]:
    answer = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def seed(workdir: Path, count: int) -> str:
    """The four environments through the API, then ``count`` namespaces with `konfig
    import-tree` (one transaction: seeding through the API would take most of the run)."""
    proc, base = start(workdir)
    try:
        with httpx.Client(base_url=base, headers=owner(base), timeout=60) as http:
            names = seed_environments(http)
    finally:
        stop(proc)
    tree = workdir / "tree"
    write_tree(tree, count)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "konfig", "import-tree", str(tree), "--tenant", "bench"],
        env=environment(workdir),
        check=True,
        capture_output=True,
    )
    print(f"imported {count} namespaces in {time.perf_counter() - started:.0f} s")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespaces", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        names = seed(Path(folder), args.namespaces)
        proc, base = start(Path(folder))
        try:
            with httpx.Client(base_url=base, headers=login(base), timeout=60) as http:
                first = http.get("/api/v1/namespaces", params={"limit": 1}).json()["items"][0]["id"]
                rounds = args.rounds
                timed(
                    "reference: GET /namespaces/{id}",
                    lambda: http.get(f"/api/v1/namespaces/{first}"),
                    rounds,
                )
                timed(
                    "compare 4 environments x 500 keys (raw)",
                    lambda: http.get("/api/v1/compare", params={"namespaces": names}),
                    rounds,
                )
                timed(
                    "compare 4 environments x 500 keys (resolved)",
                    lambda: http.get(
                        "/api/v1/compare", params={"namespaces": names, "resolved": "true"}
                    ),
                    rounds,
                )
                search = {"q": "max_connections"}
                timed(
                    f"search, first (builds the index of {args.namespaces} namespaces)",
                    lambda: http.get("/api/v1/search", params=search),
                    1,
                )
                timed(
                    f"search max_connections over {args.namespaces} namespaces",
                    lambda: http.get("/api/v1/search", params=search),
                    rounds,
                )
                timed(
                    "search matching nothing",
                    lambda: http.get("/api/v1/search", params={"q": "no-such-key"}),
                    rounds,
                )
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
