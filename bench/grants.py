"""What a permission check costs with grants (prints figures only).

A user's ``Principal.allows(namespace, "read")`` walks their grants (each a compiled pattern,
cached); before grants it compared one role. Times, in one run and side by side, the check for
a user with 1, 5 and 20 grants, next to the single role comparison it replaced and a plain
1M-step Python loop (the machine's speed). The read path calls it once per request for a
person's JWT; API tokens remember the answer per namespace (``TokenRecord.may_read``).

    python bench/grants.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

from konfig.auth.principal import Principal
from konfig.users.grants import Grant
from konfig.users.models import Role


def timed(label: str, call: Callable[[], object], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    per_call = (time.perf_counter() - started) / rounds * 1e9
    print(f"{label:<44} {per_call:8.0f} ns")
    return per_call


def user(grants: list[Grant]) -> Principal:
    return Principal("user", uuid.uuid4(), uuid.uuid4(), Role.viewer, grants=tuple(grants))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200_000)
    rounds = parser.parse_args().rounds
    started = time.perf_counter()
    total = 0
    for step in range(1_000_000):
        total += step
    print(f"{'machine: a 1M-step Python loop':<44} {(time.perf_counter() - started) * 1e3:8.1f} ms")
    namespace = "payments/production"
    reference = timed(
        "reference: Role.at_least (before grants)",
        lambda: Role.editor.at_least(Role.viewer),
        rounds,
    )
    others = [Grant(Role.viewer, f"team{i}/**") for i in range(19)]
    for label, grants in (
        ("1 grant (viewer on **)", [Grant(Role.viewer, "**")]),
        ("5 grants, the match last", [*others[:4], Grant(Role.editor, "payments/*")]),
        ("20 grants, the match last", [*others, Grant(Role.editor, "payments/**")]),
        ("20 grants, none matching", [*others, Grant(Role.viewer, "orders/**")]),
    ):
        principal = user(grants)
        cost = timed(
            f"allows(read), {label}", lambda p=principal: p.allows(namespace, "read"), rounds
        )
        print(f"{'':<44} {cost / reference:8.1f}x the reference")


if __name__ == "__main__":
    main()
