"""The resolved config, as services consume it: render, run, watch."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
from typing import Annotated, Any

import typer

from konfig.cli import credentials
from konfig.cli.output import fail, note
from konfig.cli.session import api, konfig
from konfig.client import Konfig, KonfigError


def resolved(name: str) -> dict[str, Any]:
    """The resolved config a service in ``name`` reads (with what it inherits), typed."""
    return konfig().get_config(name)


def env_name(key: str, prefix: str = "") -> str:
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def environment(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Keys uppercased with non-alphanumerics as ``_``; JSON values as JSON strings.

    The same rules as the server's ``format=env``; two keys that map to one name are an error.
    """
    variables: dict[str, str] = {}
    owners: dict[str, str] = {}
    for key, value in config.items():
        name = env_name(key, prefix)
        if name in owners:
            raise fail(f"{owners[name]!r} and {key!r} would both be ${name}")
        owners[name] = key
        variables[name] = env_value(value)
    return variables


@api
def render(
    name: str,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="env, json, yaml or properties")
    ] = "env",
    export: Annotated[
        bool,
        typer.Option(
            "--export",
            help='Print shell `export` lines, for eval "$(konfig render NAME --export)"',
        ),
    ] = False,
) -> None:
    """Print the resolved config. For an entrypoint script, eval "$(konfig render NAME
    --export)" exports it to the commands the script runs."""
    if fmt not in ("env", "json", "yaml", "properties"):
        raise typer.BadParameter("--format must be env, json, yaml or properties")
    if export and fmt != "env":
        raise typer.BadParameter("--export prints shell lines: leave --format out")
    if export:
        variables = environment(resolved(name))
        text = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in variables.items())
    elif fmt == "json":
        text = json.dumps(resolved(name), indent=2, ensure_ascii=False) + "\n"
    else:
        text = konfig().get_config(name, format=fmt)  # type: ignore[call-overload]
    sys.stdout.write(text)


@api
def run(
    name: str,
    command: Annotated[list[str], typer.Argument(metavar="-- COMMAND...")],
    watch: Annotated[bool, typer.Option(help="Restart COMMAND when the config changes")] = False,
    prefix: Annotated[str, typer.Option(help="Put this before every variable name")] = "",
    grace: Annotated[
        float,
        typer.Option(
            min=0, help="With --watch: seconds COMMAND has to exit after SIGTERM before SIGKILL"
        ),
    ] = 10.0,
) -> None:
    """Run COMMAND with the resolved config as environment variables."""
    env = os.environ | environment(resolved(name), prefix)
    if not watch:
        sys.stdout.flush()
        try:
            os.execvpe(command[0], command, env)  # noqa: S606 - running the user's command is the point
        except OSError as exc:
            raise fail(f"cannot run {command[0]}: {exc.strerror}", 127) from None
    raise typer.Exit(_run_watching(name, command, prefix, grace))


def _follow(
    name: str, changes: queue.Queue[Any], stop: threading.Event, *, fmt: str, initial: bool
) -> threading.Thread:
    """A thread that puts each new config (or the error that ended the watch) on ``changes``."""
    login = credentials.require()

    def follow() -> None:
        with Konfig(login.url, login.access_token) as watcher:
            try:
                watcher.follow(name, changes.put, format=fmt, stop=stop, initial=initial)
            except KonfigError as exc:
                changes.put(exc)

    thread = threading.Thread(target=follow, name="konfig-watch", daemon=True)
    thread.start()
    return thread


def _start(command: list[str], config: dict[str, Any], prefix: str) -> subprocess.Popen[bytes]:
    """COMMAND in a session of its own, so that ``_stop`` stops whatever it starts as well."""
    try:
        return subprocess.Popen(  # noqa: S603 - running the user's command is the point
            command, env=os.environ | environment(config, prefix), start_new_session=True
        )
    except OSError as exc:
        raise fail(f"cannot run {command[0]}: {exc.strerror}", 127) from None


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(child.pid, signum)  # the child leads its group: its pid is the group's id
    except (ProcessLookupError, PermissionError):  # nothing of the group is left
        pass


def _stop(child: subprocess.Popen[bytes], grace: float) -> None:
    """Stop the child's whole process group (a shell's or npm's children with it): SIGTERM,
    ``grace`` seconds for the child to exit, then SIGKILL for whatever of the group is left."""
    _signal_group(child, signal.SIGTERM)
    try:
        child.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(child, signal.SIGKILL)
    child.wait()


def _run_watching(name: str, command: list[str], prefix: str, grace: float) -> int:
    """Run COMMAND, restart it on each change, and exit with its code when it exits by itself."""
    changes: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    # Stopped by a supervisor (SIGTERM) or Ctrl-C, stop the child too. The handlers only note
    # the signal: an exception raised wherever the signal lands (inside Popen, between a start
    # and its assignment) could leave a freshly started child running with nobody to stop it.
    stopped_by: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stopped_by.append(signum))
    child = _start(command, resolved(name), prefix)
    _follow(name, changes, stop, fmt="json", initial=False)
    try:
        while not stopped_by:
            try:
                change = changes.get(timeout=0.2)
            except queue.Empty:
                if child.poll() is not None:
                    return child.returncode
                continue
            if isinstance(change, KonfigError):
                raise change
            note(f"{name} changed: restarting {command[0]}")
            _stop(child, grace)
            if stopped_by:
                break
            child = _start(command, change, prefix)
        return 128 + stopped_by[0]
    finally:
        stop.set()
        _stop(child, grace)


@api
def watch(
    name: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help="json, yaml, env or properties")] = (
        "json"
    ),
    count: Annotated[
        int | None, typer.Option(min=1, help="Exit after this many configs (the first included)")
    ] = None,
) -> None:
    """Print the resolved config, then again each time it changes (Ctrl-C ends)."""
    changes: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    printed = 0
    _follow(name, changes, stop, fmt=fmt, initial=True)
    try:
        while count is None or printed < count:
            change = changes.get()
            if isinstance(change, KonfigError):
                raise change
            text = json.dumps(change, sort_keys=True) + "\n" if fmt == "json" else str(change)
            sys.stdout.write(text)
            sys.stdout.flush()
            printed += 1
    finally:
        stop.set()


def register(app: typer.Typer) -> None:
    app.command()(render)
    app.command()(run)
    app.command()(watch)
