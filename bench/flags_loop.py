"""OFREP single-flag evaluation's cost per request in-process, beside the read path's (prints
figures only).

Builds the app as ``konfig serve`` does (JSON logs at INFO, into /dev/null), seeds
``bench/read_path_loop.py``'s namespaces and ``bench/flags.py``'s 50 flags on SQLite, then calls
the ASGI app directly with prebuilt scopes, alternating: ``GET /api/v1/config/bench/production``
(the read path, the reference) and ``POST /ofrep/v1/evaluate/flags/rule_07`` with
``bench/flags.py``'s 5-attribute context. Prints the median CPU microseconds per request of each
and their ratio: steadier than wrk on a shared machine. ``--profile`` prints cProfile's top
functions of one single-flag round.

    .venv/bin/python bench/flags_loop.py [--requests 10000] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
from typing import Any

import httpx
import orjson
from flags import CONTEXT, flags
from read_path_loop import PASSWORD, round_of, seed, served

FLAG_PATH = "/ofrep/v1/evaluate/flags/rule_07"
BODY = orjson.dumps({"context": CONTEXT})


async def seed_flags(client: httpx.AsyncClient) -> None:
    email = "owner@bench.example.com"
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    found = await client.get(
        "/api/v1/namespaces", params={"prefix": "bench/production"}, headers=headers
    )
    namespace = next(n["id"] for n in found.json()["items"] if n["name"] == "bench/production")
    for key, definition in flags().items():
        put = await client.put(
            f"/api/v1/namespaces/{namespace}/configs/{key}",
            headers=headers,
            json={"value": definition, "value_type": "flag"},
        )
        put.raise_for_status()


async def flag_round(app: Any, token: str, requests: int) -> float:
    """CPU microseconds per single-flag evaluation over ``requests`` sequential calls."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"x-konfig-namespace", b"bench/production"),
    ]
    return await round_of(
        app, token, requests, method="POST", path=FLAG_PATH, body=BODY, headers=headers
    )


async def main(requests: int, rounds: int, profile: bool) -> None:
    async with served() as (app, client):
        token = await seed(client)
        await seed_flags(client)
        gc.collect()
        gc.freeze()  # as konfig serve does once started
        await round_of(app, token, requests // 4)  # warm up
        await flag_round(app, token, requests // 4)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await flag_round(app, token, requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        reads, evaluations = [], []
        for _ in range(rounds):  # alternating
            reads.append(await round_of(app, token, requests))
            evaluations.append(await flag_round(app, token, requests))
    read, single = statistics.median(reads), statistics.median(evaluations)
    print(f"read path (reference): median {read:.1f} us/request ({rounds} rounds of {requests})")
    print(
        f"OFREP single flag:     median {single:.1f} us/request "
        f"(min {min(evaluations):.1f}, max {max(evaluations):.1f}); {single / read:.2f}x the "
        "read path's cost"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.rounds, arguments.profile))
