"""Benchmark of the SDKs' watch: how soon each SDK's listener sees a change (prints figures).

Starts one `konfig serve` (SQLite) on 127.0.0.1, then follows one namespace with each
candidate in turn (A B C …, `--runs` rounds): `curl -N` on the event stream (the reference: the
protocol with no SDK), and the Python, JavaScript, Go and Java SDKs by
server-sent events and by long poll, each through its conformance driver (`tests/sdks/`). Each
round writes the watched key `--writes` times, one write at a time, and measures from the write
being sent to the candidate's line arriving. Prints p50, p90 and max per candidate and its p50
against curl's. Never fails on speed.

    python bench/sdk_watch.py [--writes 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from read_path import free_port, python_loop_ms  # bench/read_path.py

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "BenchPassword123"
NS = "bench/watch"


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {"KONFIG_DATA_DIR": str(workdir / "data"), "KONFIG_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "konfig", "serve"],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("konfig serve did not become ready")


def seed(url: str) -> tuple[httpx.Client, str, str]:
    """An admin session, the watched namespace's id and a read token."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    api = f"{url}/api/v1"
    httpx.post(f"{api}/auth/register", json={"name": "bench", "email": email, "password": PASSWORD})
    login = httpx.post(f"{api}/auth/login", json={"email": email, "password": PASSWORD}).json()
    admin = httpx.Client(
        base_url=api, headers={"Authorization": f"Bearer {login['access_token']}"}, timeout=30
    )
    namespace_id = admin.post("/namespaces", json={"name": NS}).json()["id"]
    admin.put(f"/namespaces/{namespace_id}/configs/seq", json={"value": 0, "value_type": "number"})
    scopes = [{"namespaces": "bench/*", "permissions": ["read"]}]
    token = admin.post("/tokens", json={"name": "bench", "scopes": scopes}).json()["token"]
    return admin, namespace_id, token


def build(workdir: Path) -> dict[str, list[str]]:
    """The candidates' command lines (those whose tools are missing are left out)."""
    candidates: dict[str, list[str]] = {}
    if shutil.which("curl"):
        candidates["curl -N (reference)"] = ["curl", "-sN", "-H", "Authorization: Bearer {token}"]
    driver = str(ROOT / "tests" / "sdks" / "python_driver.py")
    for mode in ("sse", "poll"):
        candidates[f"python, {mode}"] = [
            *(sys.executable, driver, "watch", NS, "1000000"),
            *("--mode", mode, "--wait", "60"),
        ]
    javascript = ROOT / "sdks" / "javascript"
    if shutil.which("node") and (javascript / "node_modules").exists():
        out = workdir / "javascript"
        tsc = javascript / "node_modules" / "typescript" / "bin" / "tsc"
        subprocess.run(
            ["node", str(tsc), "-p", str(javascript / "tsconfig.json"), "--outDir", str(out)],
            check=True,
        )
        for mode in ("sse", "poll"):
            candidates[f"javascript, {mode}"] = [
                *("node", str(out / "conformance.js"), "watch", NS, "1000000"),
                *("--mode", mode, "--wait", "60"),
            ]
    if shutil.which("go"):
        binary = workdir / "konfig-go"
        subprocess.run(
            ["go", "build", "-o", str(binary), "./cmd/konfig-conformance"],
            cwd=ROOT / "sdks" / "go",
            check=True,
            env=os.environ | {"GOPROXY": "off"},
        )
        for mode in ("sse", "poll"):
            candidates[f"go, {mode}"] = [
                str(binary),
                "watch",
                NS,
                "1000000",
                "--mode",
                mode,
                "--wait",
                "60",
            ]
    java = ROOT / "sdks" / "java"
    jackson = Path("/usr/share/java/jackson-databind.jar")
    if shutil.which("javac") and shutil.which("make") and jackson.exists():
        out = workdir / "java"
        subprocess.run(["make", "-s", "-C", str(java), f"OUT={out}", "all"], check=True)
        jars = [out / "konfig-conformance.jar", out / "konfig-client.jar"]
        jars += [jackson.with_name(f"jackson-{name}.jar") for name in ("core", "annotations")]
        classpath = os.pathsep.join(str(jar) for jar in (*jars, jackson))
        for mode in ("sse", "poll"):
            candidates[f"java, {mode}"] = [
                *("java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classpath),
                *("dev.konfig.conformance.Main", "watch", NS, "1000000"),
                *("--mode", mode, "--wait", "60"),
            ]
    return candidates


def seq_of(line: str) -> int | None:
    """The `seq` a candidate's output line carries (a driver's JSON line, or an SSE data line)."""
    text = line.removeprefix("data: ")
    if not text.startswith("{"):
        return None
    body = json.loads(text)
    config = body.get("config")
    return config.get("seq") if isinstance(config, dict) else None


def measure(
    argv: list[str], url: str, token: str, admin: httpx.Client, namespace_id: str, writes: int
) -> list[float]:
    """Seconds from each write being sent to the candidate's line for it arriving."""
    env = os.environ | {"KONFIG_URL": url, "KONFIG_TOKEN": token}
    if argv[0] == "curl":
        argv = [*(a.replace("{token}", token) for a in argv), f"{url}/api/v1/config/{NS}/events"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    arrivals: queue.Queue[tuple[int, float]] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seq = seq_of(line.strip())
            if seq is not None:
                arrivals.put((seq, time.perf_counter()))

    threading.Thread(target=read, daemon=True).start()
    try:
        current, _ = arrivals.get(timeout=60)  # the current state: the watch is up
        latencies = []
        for _ in range(writes):
            current += 1
            sent = time.perf_counter()
            admin.put(f"/namespaces/{namespace_id}/configs/seq", json={"value": current})
            while True:
                seq, arrived = arrivals.get(timeout=60)
                if seq == current:
                    latencies.append(arrived - sent)
                    break
            time.sleep(0.05)
        return latencies
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="konfig-sdk-watch-"))
    server, url = start_server(workdir)
    try:
        admin, namespace_id, token = seed(url)
        candidates = build(workdir)
        results: dict[str, list[float]] = {name: [] for name in candidates}
        for run in range(args.runs):
            print(f"round {run + 1}: machine speed {python_loop_ms():.0f} ms per 1M-step loop")
            for name, argv in candidates.items():
                results[name] += measure(argv, url, token, admin, namespace_id, args.writes)
        reference = statistics.median(next(iter(results.values())))
        print(f"\n{'candidate':<22} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'p50 vs first':>13}")
        for name, latencies in results.items():
            ordered = sorted(latencies)
            p50 = statistics.median(ordered)
            p90 = ordered[int(0.9 * (len(ordered) - 1))]
            print(
                f"{name:<22} {p50 * 1000:8.1f} {p90 * 1000:8.1f} {ordered[-1] * 1000:8.1f} "
                f"{p50 / reference:12.2f}x"
            )
        print(f"\n{args.runs} rounds x {args.writes} writes each; one write at a time")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
