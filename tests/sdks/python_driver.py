"""The conformance driver for the Python SDK (``konfig.client``): the same commands and output
as the JavaScript and Go drivers (``sdks/*/…/konfig-conformance``).

    python python_driver.py read NS [--cache PATH] [--fail-fast]
    python python_driver.py get NS KEY string|number|boolean|json
    python python_driver.py watch NS COUNT [--mode auto|sse|poll] [--wait SECONDS]

The Python SDK has no typed getters yet: ``get`` checks the type here, the way the other SDKs'
getters do (a bool is not a number). Its watch long-polls only, so every mode is ``poll``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import warnings
from typing import Any

from konfig.client import Konfig, KonfigError, RetryPolicy, StaleConfigWarning

CHECKS: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "json": lambda v: True,
}


class DriverError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def read(konfig: Konfig, name: str) -> tuple[dict[str, Any], bool]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StaleConfigWarning)
        config = konfig.get_config(name)
    return config, any(issubclass(w.category, StaleConfigWarning) for w in caught)


def typed(config: dict[str, Any], name: str, key: str, kind: str) -> Any:
    if key not in config:
        raise DriverError("MISSING_KEY", f"{name} has no key {key}")
    value = config[key]
    if not CHECKS[kind](value):
        raise DriverError("WRONG_TYPE", f"{name}: {key} is not a {kind}")
    return value


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
    fail_fast = flags.get("fail-fast") == "1"
    konfig = Konfig(
        os.environ["KONFIG_URL"],
        os.environ.get("KONFIG_TOKEN"),
        cache_path=None if fail_fast else flags.get("cache"),
        retry=RetryPolicy(attempts=1) if fail_fast else None,
    )
    if command == "read":
        config, stale = read(konfig, name)
        emit({"config": config, "stale": stale, "etag": None})
    elif command == "get":
        key, kind = rest
        config, _ = read(konfig, name)
        emit({"value": typed(config, name, key, kind)})
    elif command == "watch":
        remaining = [int(rest[0]) if rest else 1]
        stop = threading.Event()

        def changed(config: Any) -> None:
            emit({"config": config, "stale": False, "etag": None, "mode": "poll"})
            remaining[0] -= 1
            if remaining[0] <= 0:
                stop.set()

        konfig.watch(name, changed, wait=float(flags.get("wait", "30")), stop=stop)
    return 0


def main() -> int:
    try:
        return run(sys.argv[1:])
    except KonfigError as exc:
        error = {
            "code": exc.code,
            "type": type(exc).__name__,
            "status": exc.status_code,
            "message": exc.message,
        }
    except DriverError as exc:
        error = {"code": exc.code, "type": "DriverError", "status": None, "message": str(exc)}
    emit({"error": error})
    return 1


if __name__ == "__main__":
    sys.exit(main())
