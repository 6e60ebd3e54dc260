"""A resolved read with 20 references against the same config without any (prints figures only).

Starts `konfig serve` (SQLite, one process) and seeds, in one tenant:

- ``shared``: 20 keys;
- ``plain/production``: 40 keys, 20 of them holding the very text the references give;
- ``refs/production``: the same 40 keys, those 20 written ``…${ref:shared:key_NN}…``;

both resolve to the same bytes. Then, in one run and side by side:

1. the read path's throughput (`wrk -t1 -cN -d…s --latency`, A B A B …, median of ``--runs``):
   a steady read is served from the rendered cache, references or not;
2. the first read after a change (the cache dropped the entry: resolution, expansion and
   rendering again), ``--changes`` times each, p50 and p99.

Prints the ratios (refs / plain). Never fails on speed.

    python bench/references.py [--duration 5] [--runs 3] [--connections 32] [--changes 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from read_path import (  # a sibling script, not a package
    PASSWORD,
    Candidate,
    free_port,
    median,
    python_loop_ms,
    wait_for,
    wrk,
)

REFS = 20


def seed(http: httpx.Client) -> tuple[str, dict[str, str]]:
    email = "owner@refs.example.com"
    http.post(
        "/api/v1/auth/register", json={"name": "refs", "email": email, "password": PASSWORD}
    ).raise_for_status()
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    ids = {}
    for name in ("shared", "plain/production", "refs/production"):
        made = http.post("/api/v1/namespaces", json={"name": name})
        made.raise_for_status()
        ids[name] = made.json()["id"]
    shared = [{"key": f"key_{i:02d}", "value": f"shared-{i:02d}-" + "y" * 20} for i in range(REFS)]
    plain: list[dict[str, object]] = []
    refs: list[dict[str, object]] = []
    for i in range(REFS):
        expanded = f"https://{shared[i]['value']}/path"
        plain.append({"key": f"ref_{i:02d}", "value": expanded})
        refs.append({"key": f"ref_{i:02d}", "value": f"https://${{ref:shared:key_{i:02d}}}/path"})
    for i in range(REFS):
        same = {"key": f"own_{i:02d}", "value": f"value-{i:02d}-" + "x" * 40}
        plain.append(same)
        refs.append(same)
    for name, entries in (
        ("shared", shared),
        ("plain/production", plain),
        ("refs/production", refs),
    ):
        http.put(
            f"/api/v1/namespaces/{ids[name]}/document", json={"entries": entries}
        ).raise_for_status()
    account = http.post("/api/v1/service-accounts", json={"name": "reader"}).json()
    token = http.post(
        "/api/v1/tokens",
        json={
            "name": "reader",
            "service_account_id": account["id"],
            "scopes": [{"namespaces": "**", "permissions": ["read"]}],
        },
    ).json()["token"]
    return str(token), ids


def first_reads(
    http: httpx.Client, token: str, namespace_id: str, name: str, changes: int
) -> list[float]:
    """The first read after each change to the namespace (its cache entry dropped)."""
    samples = []
    auth = {"Authorization": f"Bearer {token}"}
    for i in range(changes):
        http.put(
            f"/api/v1/namespaces/{namespace_id}/configs/bump", json={"value": str(i)}
        ).raise_for_status()
        started = time.perf_counter()
        answer = http.get(f"/api/v1/config/{name}", headers=auth)
        samples.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return sorted(samples)


def p99(samples: list[float]) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    print(f"machine: a 1M-step Python loop takes {python_loop_ms():.0f} ms")

    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
        env |= {
            "KONFIG_DATA_DIR": folder,
            "KONFIG_PORT": str(port),
            "KONFIG_READ_RATE_LIMIT_PER_MINUTE": str(10**9),
            "KONFIG_RATE_LIMIT_PER_MINUTE": str(10**9),
            "KONFIG_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "konfig", "serve"],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{base}/ready", proc, "konfig")
            with httpx.Client(base_url=base, timeout=30) as http:
                token, ids = seed(http)
                auth = {"Authorization": f"Bearer {token}"}
                bodies = {
                    name: http.get(f"/api/v1/config/{name}", headers=auth).content
                    for name in ("plain/production", "refs/production")
                }
                assert bodies["plain/production"] == bodies["refs/production"], "not the same"
                candidates = [
                    Candidate(
                        name,
                        f"{base}/api/v1/config/{name}",
                        ["-H", f"Authorization: Bearer {token}"],
                    )
                    for name in ("plain/production", "refs/production")
                ]
                for _ in range(args.runs):
                    for candidate in candidates:
                        candidate.results.setdefault(args.connections, []).append(
                            wrk(candidate, args.connections, args.duration)
                        )
                figures = {c.name: median(c.results[args.connections]) for c in candidates}
                print(f"\nsteady reads, wrk -c{args.connections}, median of {args.runs} runs:")
                for name, (rps, p50, p99_) in figures.items():
                    print(f"  {name:<20} {rps:9.0f} req/s   p50 {p50:6.2f} ms   p99 {p99_:6.2f} ms")
                ratio = figures["refs/production"][0] / figures["plain/production"][0]
                print(f"  with {REFS} references: {ratio:.2f}x the throughput without")
                print(
                    f"\nfirst read after a change (resolve + expand + render), {args.changes} each:"
                )
                firsts = {}
                for name in ("plain/production", "refs/production"):
                    firsts[name] = first_reads(http, token, ids[name], name, args.changes)
                for name, samples in firsts.items():
                    print(
                        f"  {name:<20} p50 {statistics.median(samples):6.2f} ms   "
                        f"p99 {p99(samples):6.2f} ms"
                    )
                slower = statistics.median(firsts["refs/production"]) / statistics.median(
                    firsts["plain/production"]
                )
                print(f"  with {REFS} references: {slower:.2f}x the time without (p50)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
