"""Benchmark of OFREP flag evaluation beside the read path's references (prints figures only).

Starts, on 127.0.0.1, each with one process: Konfig (`konfig serve`, SQLite) holding 50 flags
(20 static, 15 targeting rules, 10 fractional splits, 5 sem_ver rules) beside the 50-key config
of bench/read_path.py, and the bare Starlette app returning that config's prebuilt bytes (the
framework ceiling). Runs `wrk -t1 -cN -d…s --latency`, alternating the candidates:

- bare Starlette, GET the config (the reference);
- Konfig, GET the config (the read path);
- Konfig, POST /ofrep/v1/evaluate/flags, a 5-attribute context (bulk: 50 flags), the same
  context every time (as a client-side provider polls: its answer is remembered), and a new
  targeting key every time (every request evaluated);
- Konfig, POST /ofrep/v1/evaluate/flags/{key}, a targeted flag (single);
- Konfig, the same bulk request with If-None-Match: its ETag (304).

Prints the median req/s, p50, p99, the ratios to the reference (targets: bulk >= 0.4x, single
>= 0.6x, 304 at the read path's speed), and the evaluations counted against those served (from
`konfig_flag_evaluations_total`: none may be lost). Never fails on speed.

    python bench/flags.py [--duration 10] [--runs 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
from read_path import (
    PASSWORD,
    Candidate,
    _ms,
    median,
    python_loop_ms,
    start_konfig,
    start_starlette,
)

CONTEXT = {
    "targetingKey": "user-12345",
    "email": "ann@customer.example.com",
    "plan": "pro",
    "country": "DE",
    "app_version": "2.4.1",
}
ON_OFF = {"on": True, "off": False}


def flags() -> dict[str, dict[str, Any]]:
    """50 flags, as a service's namespace might hold them."""
    made: dict[str, dict[str, Any]] = {}
    for i in range(20):
        made[f"static_{i:02d}"] = {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "on"}
    for i in range(15):
        rule = {
            "if": [
                {
                    "and": [
                        {"in": [{"var": "plan"}, ["pro", "enterprise"]]},
                        {"ends_with": [{"var": "email"}, "@customer.example.com"]},
                        {"!=": [{"var": "country"}, f"X{i}"]},
                    ]
                },
                "on",
                "off",
            ]
        }
        made[f"rule_{i:02d}"] = {
            "state": "ENABLED",
            "variants": ON_OFF,
            "defaultVariant": "off",
            "targeting": rule,
        }
    for i in range(10):
        split = {"fractional": [["a", 10 + i], ["b", 90 - i]]}
        made[f"split_{i:02d}"] = {
            "state": "ENABLED",
            "variants": {"a": "treatment", "b": "control"},
            "defaultVariant": "b",
            "targeting": split,
        }
    for i in range(5):
        rule = {"if": [{"sem_ver": [{"var": "app_version"}, ">=", f"2.{i}.0"]}, "on", "off"]}
        made[f"version_{i:02d}"] = {
            "state": "ENABLED",
            "variants": ON_OFF,
            "defaultVariant": "off",
            "targeting": rule,
        }
    return made


def seed_flags(base: str) -> str:
    """The 50 flags in bench/production (the tenant bench/read_path.py seeded); a token scoped
    to that one namespace (no X-Konfig-Namespace needed)."""
    with httpx.Client(base_url=base, timeout=30) as http:
        login = http.post(
            "/api/v1/auth/login", json={"email": "owner@bench.example.com", "password": PASSWORD}
        )
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        found = http.get("/api/v1/namespaces", params={"prefix": "bench/production"}).json()
        namespace = next(n["id"] for n in found["items"] if n["name"] == "bench/production")
        for key, definition in flags().items():
            http.put(
                f"/api/v1/namespaces/{namespace}/configs/{key}",
                json={"value": definition, "value_type": "flag"},
            ).raise_for_status()
        account = http.post("/api/v1/service-accounts", json={"name": "bench-flags"}).json()
        scopes = [{"namespaces": "bench/production", "permissions": ["read"]}]
        created = http.post(
            "/api/v1/tokens",
            json={"name": "bench-flags", "service_account_id": account["id"], "scopes": scopes},
        )
        return str(created.json()["token"])


def post_script(workdir: Path, name: str, headers: dict[str, str]) -> Path:
    script = workdir / f"{name}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = '{json.dumps({'context': CONTEXT})}'"]
    lines += [f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    return script


def varying_script(workdir: Path, headers: dict[str, str]) -> Path:
    """A new targeting key on every request: no bulk answer is ever remembered."""
    script = workdir / "bulk_varying.lua"
    rest = json.dumps({k: v for k, v in CONTEXT.items() if k != "targetingKey"})[1:-1]
    lines = ['wrk.method = "POST"', "counter = 0"]
    lines += [f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()]
    lines += [
        "request = function()",
        "  counter = counter + 1",
        f"""  local body = '{{"context": {{"targetingKey": "user-' .. counter .. '", {rest}}}}}'""",
        "  return wrk.format(nil, nil, nil, body)",
        "end",
    ]
    script.write_text("\n".join(lines) + "\n")
    return script


_COUNTED = re.compile(r"^konfig_flag_evaluations_total\{[^}]*\} (\S+)$", re.MULTILINE)


def counted(base: str) -> float:
    return sum(float(v) for v in _COUNTED.findall(httpx.get(f"{base}/metrics").text))


def measure(
    candidate: Candidate, connections: int, duration: int
) -> tuple[float, float, float, int]:
    """``wrk``'s median figures (as bench/read_path.py reads them) and the requests completed."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    out = subprocess.run(
        [*args, *candidate.wrk_args, candidate.url], capture_output=True, text=True, check=True
    ).stdout
    if "Socket errors" in out or ("Non-2xx" in out and "304" not in candidate.name):
        raise SystemExit(f"{candidate.name} answered errors: {out.strip().splitlines()[-3:]}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return rps, p50, p99, done


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="32")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    connections = [int(c) for c in args.connections.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="konfig-bench-flags-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        read_path, body = start_konfig("Konfig read path", workdir, None)
        procs += read_path.procs
        base = read_path.url.split("/api/")[0]
        token = seed_flags(base)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        bulk_url = f"{base}/ofrep/v1/evaluate/flags"
        first = httpx.post(bulk_url, headers=auth, json={"context": CONTEXT})
        first.raise_for_status()
        answers = first.json()["flags"]
        if len(answers) != 50 or [a for a in answers if "errorCode" in a]:
            raise SystemExit(f"the bulk answer is not 50 evaluated flags: {answers}")
        etag = first.headers["etag"]
        starlette = start_starlette(workdir, body)
        procs += starlette.procs
        starlette.name = "bare Starlette (GET)"
        read_path.name = "Konfig read path (GET)"
        bulk = Candidate(
            "OFREP bulk, 50 flags", bulk_url, ["-s", str(post_script(workdir, "bulk", auth))]
        )
        single = Candidate(
            "OFREP single flag",
            f"{bulk_url}/rule_07",
            ["-s", str(post_script(workdir, "single", auth))],
        )
        varying = Candidate(
            "OFREP bulk, new context",
            bulk_url,
            ["-s", str(varying_script(workdir, auth))],
        )
        cached = Candidate(
            "OFREP bulk, 304",
            bulk_url,
            ["-s", str(post_script(workdir, "bulk304", {**auth, "If-None-Match": etag}))],
        )
        again = {**auth, "If-None-Match": etag}
        if httpx.post(bulk_url, headers=again, json={"context": CONTEXT}).status_code != 304:
            raise SystemExit("an unchanged bulk ETag was not answered 304")
        candidates = [starlette, read_path, bulk, varying, single, cached]
        print(f"config: {len(body)} bytes; bulk answer: {len(first.content)} bytes for 50 flags")
        for candidate in candidates:  # warm up
            measure(candidate, 32, 2)
        served = {"OFREP bulk, 50 flags": 50, "OFREP bulk, new context": 50, "OFREP single flag": 1}
        expected = got = 0.0
        for conns in connections:
            for turn in range(args.runs):
                for candidate in candidates:  # alternate: A B C D E, A B C D E, ...
                    before = counted(base)
                    *result, done = measure(candidate, conns, args.duration)
                    if candidate.name in served:
                        got += counted(base) - before
                        expected += done * served[candidate.name]
                    candidate.results.setdefault(conns, []).append(
                        (result[0], result[1], result[2])
                    )
                    print(
                        f"  c={conns} run {turn + 1} {candidate.name:<24} {result[0]:>8.0f} req/s"
                        f"  p50 {result[1]:.2f} ms  p99 {result[2]:.2f} ms",
                        flush=True,
                    )
        for conns in connections:
            print(f"\n== wrk -t1 -c{conns}: median of {args.runs} runs")
            print(f"{'server':<26}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'x ref':>8}")
            ceiling = median(starlette.results[conns])[0]
            for candidate in candidates:
                rps, p50, p99 = median(candidate.results[conns])
                print(
                    f"{candidate.name:<26}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}{rps / ceiling:>8.2f}"
                )
            read_rps = median(read_path.results[conns])[0]
            print(
                f"  targets: bulk >= 0.40x, single >= 0.60x of bare Starlette; 304 vs the read "
                f"path: {median(cached.results[conns])[0] / read_rps:.2f}x"
            )
        print(
            f"\nevaluations counted {got:.0f}; answered to wrk {expected:.0f} "
            "(the requests it completed, times the flags each answers; a request cut off at "
            "the end of a run counts on the server only)"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
        print(f"speed of this machine now: {python_loop_ms():.0f} ms for a 1M-step Python loop")
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
