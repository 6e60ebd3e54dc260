"""The conformance driver for the Python SDK (``konfig_client``, the ``konfig-client``
distribution): the same commands and output as the JavaScript and Go drivers
(``sdks/*/…/konfig-conformance``).

    python python_driver.py read NS [--cache PATH] [--fail-fast]
    python python_driver.py get NS KEY string|number|boolean|json
    python python_driver.py watch NS COUNT [--mode auto|sse|poll] [--wait SECONDS] [--cache PATH]

The server and token come from KONFIG_URL and KONFIG_TOKEN. A failure prints
{"error": {"code", "type", "status", "message"}} and exits 1.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from konfig_client import Config, Konfig, KonfigError


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def shown(config: Config) -> dict[str, Any]:
    return {"config": config.values, "stale": config.stale, "etag": config.etag}


def watch(konfig: Konfig, name: str, count: int, flags: dict[str, str]) -> None:
    remaining = [count]
    lock = threading.Lock()
    mode: Any = flags.get("mode", "auto")

    def changed(config: Config, previous: Config | None) -> None:
        with lock:
            emit(shown(config) | {"mode": watching.mode})
            remaining[0] -= 1
            if remaining[0] <= 0:
                watching.stop()

    def failed(error: KonfigError, retrying: bool) -> None:
        if retrying:
            with lock:
                emit({"retrying": {"code": error.code, "mode": watching.mode}})

    with lock:  # the listeners wait until `watching` is bound
        watching = konfig.watch(
            name, changed, on_error=failed, mode=mode, wait=float(flags.get("wait", "30"))
        )
    watching.wait()


def run(argv: list[str]) -> int:
    positional: list[str] = []
    flags: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg == "--fail-fast":
            flags["fail-fast"] = "1"
        elif arg.startswith("--"):
            flags[arg[2:]] = next(args, "")
        else:
            positional.append(arg)
    command, name, *rest = positional
    konfig = Konfig.from_env(cache_path=flags.get("cache"), fail_fast="fail-fast" in flags)
    if command == "read":
        emit(shown(konfig.get(name)))
    elif command == "get":
        key, kind = rest
        config = konfig.get(name)
        getters: dict[str, Callable[[str], Any]] = {
            "string": config.get_string,
            "number": config.get_number,
            "boolean": config.get_boolean,
            "json": config.get_json,
        }
        emit({"value": getters[kind](key)})
    elif command == "watch":
        watch(konfig, name, int(rest[0]) if rest else 1, flags)
    else:
        sys.stderr.write(f"unknown command {command}\n")
        return 2
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        return run(sys.argv[1:])
    except KonfigError as exc:
        emit(
            {
                "error": {
                    "code": exc.code,
                    "type": type(exc).__name__,
                    "status": exc.status_code,
                    "message": exc.message,
                }
            }
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
