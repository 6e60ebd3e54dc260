"""Client commands: they talk to a Konfig server through the SDK, never to its database."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from konfig.cli import credentials
from konfig.cli.output import Output, OutputOption, dump, fail, note, out, show
from konfig.client import Konfig, KonfigError, Unauthenticated

P = ParamSpec("P")
R = TypeVar("R")


class _Session:
    """The client of one command, built from the saved credentials on first use."""

    konfig: Konfig | None = None

    def get(self) -> Konfig:
        if self.konfig is None:
            saved = credentials.load()
            self.konfig = Konfig(saved.url, saved.access_token)
        return self.konfig

    def reset(self) -> None:
        if self.konfig is not None:
            self.konfig.close()
        self.konfig = None


session = _Session()


def _refresh() -> bool:
    """Spend the saved refresh token for a new pair; False when there is none to spend."""
    saved = credentials.load()
    if saved.from_environment or not saved.refresh_token:
        return False
    try:
        with Konfig(saved.url) as konfig:
            tokens = konfig.auth.refresh(saved.refresh_token)
    except KonfigError:
        return False
    saved.access_token, saved.refresh_token = tokens["access_token"], tokens["refresh_token"]
    credentials.save(saved)
    session.reset()
    return True


def api(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command against the server: a stale login is refreshed once, errors exit 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return command(*args, **kwargs)
            except Unauthenticated:
                # A 401 means nothing was changed: after a refresh the command can run again.
                if not _refresh():
                    raise
                return command(*args, **kwargs)
        except Unauthenticated as exc:
            raise fail(f"{exc.message} (run `konfig login`, or set KONFIG_TOKEN)") from None
        except KonfigError as exc:
            raise fail(exc.message) from None
        finally:
            session.reset()

    return run


def konfig() -> Konfig:
    return session.get()


# --- login ------------------------------------------------------------------------------------


def login(
    url: Annotated[str | None, typer.Option(help="Server URL (KONFIG_URL)")] = None,
    email: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
) -> None:
    """Log in and keep the tokens in a file only you can read."""
    url = (url or credentials.load().url).rstrip("/")
    email = email or typer.prompt("Email")
    password = password or typer.prompt("Password", hide_input=True)
    try:
        with Konfig(url) as client:
            tokens = client.auth.login(email, password)
            me = client.auth.me()
    except KonfigError as exc:
        raise fail(exc.message) from None
    saved = credentials.Credentials(url, tokens["access_token"], tokens["refresh_token"], email)
    where = credentials.save(saved)
    note(f"logged in to {url} as {email} ({me.get('tenant_name', '')}); tokens in {where}")


@api
def logout() -> None:
    """End this login on the server and forget its tokens."""
    saved = credentials.load()
    if saved.access_token and not saved.from_environment:
        try:
            konfig().auth.logout()
        except KonfigError:
            pass  # an expired login is as good as ended
    if credentials.forget():
        note("logged out")


@api
def whoami(output: OutputOption = Output.table) -> None:
    """Who you are logged in as."""
    me = konfig().auth.me()
    show(me, output, ["email", "role", "tenant_name"])


# --- namespaces -------------------------------------------------------------------------------

ns_app = typer.Typer(help="Namespaces (payments/production).", no_args_is_help=True)
NS_COLUMNS = ["name", "revision", "entry_count", "description", "updated_at"]


@ns_app.command("list")
@api
def ns_list(
    prefix: Annotated[str | None, typer.Argument(help="Only names starting with this")] = None,
    output: OutputOption = Output.table,
) -> None:
    """List namespaces."""
    show(konfig().namespaces.list(prefix), output, NS_COLUMNS)


@ns_app.command("create")
@api
def ns_create(
    name: str,
    description: Annotated[str, typer.Option(help="What it holds")] = "",
    include: Annotated[
        list[str] | None, typer.Option(help="A namespace merged under it (repeatable)")
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a namespace."""
    created = konfig().namespaces.create(name, description=description, includes=include)
    show(created, output, NS_COLUMNS)


@ns_app.command("delete")
@api
def ns_delete(
    name: str,
    force: Annotated[bool, typer.Option(help="Also delete the entries it holds")] = False,
) -> None:
    """Delete a namespace."""
    konfig().namespaces.delete(name, force=force)
    note(f"deleted {name}")


# --- entries ----------------------------------------------------------------------------------

ENTRY_COLUMNS = ["key", "value_type", "value", "is_secret", "version", "updated_at"]
TYPES = ("string", "number", "boolean", "select", "json")


def parse_value(raw: str, value_type: str) -> Any:
    """The typed value of ``raw`` for ``--type``; a bad one is a usage error."""
    if value_type == "number":
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            return float(raw)
        except ValueError:
            raise typer.BadParameter(f"{raw!r} is not a number") from None
    if value_type == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise typer.BadParameter(f"{raw!r} is not a boolean: use true or false")
    if value_type == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}") from None
    return raw


@api
def get(
    namespace: str,
    key: Annotated[str | None, typer.Argument(help="Omit to list every entry")] = None,
    reveal: Annotated[bool, typer.Option(help="Show secret values")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Print one entry's value (or, with json/yaml, the whole entry), or list the entries."""
    if key is None:
        show(konfig().configs.list(namespace, reveal=reveal), output, ENTRY_COLUMNS)
        return
    entry = konfig().configs.get(namespace, key, reveal=reveal)
    if output is Output.table:
        value = entry["value"]
        out.print(value if isinstance(value, str) else json.dumps(value), markup=False)
    else:
        dump(entry, output)


@api
def set_(
    namespace: str,
    assignments: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...")],
    value_type: Annotated[
        str, typer.Option("--type", "-t", help="string, number, boolean, select or json")
    ] = "string",
    secret: Annotated[bool, typer.Option("--secret", help="Mask it and audit reveals")] = False,
    description: Annotated[str, typer.Option(help="What the entry is for")] = "",
    message: Annotated[str | None, typer.Option("-m", "--message", help="Why")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Set entries: konfig set payments/production max_connections=100 --type number."""
    if value_type not in TYPES:
        raise typer.BadParameter(f"--type must be one of {', '.join(TYPES)}")
    parsed: list[tuple[str, Any]] = []
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{assignment!r}: write KEY=VALUE")
        parsed.append((key, parse_value(raw, value_type)))
    written = [
        konfig().configs.set(
            namespace,
            key,
            value,
            value_type=value_type,
            secret=secret,
            description=description,
            message=message,
        )
        for key, value in parsed
    ]
    show(written, output, ENTRY_COLUMNS)


@api
def unset(
    namespace: str,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...")],
    message: Annotated[str | None, typer.Option("-m", "--message", help="Why")] = None,
) -> None:
    """Delete entries (their history stays)."""
    for key in keys:
        konfig().configs.delete(namespace, key, message=message)
        note(f"deleted {key}")


# --- the resolved config: render, run, watch ---------------------------------------------------


def resolved(name: str) -> dict[str, Any]:
    """The config a service in ``name`` reads: its entries, secrets revealed."""
    return {e["key"]: e["value"] for e in konfig().configs.list(name, reveal=True)}


def env_name(key: str, prefix: str = "") -> str:
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def environment(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Keys uppercased with non-alphanumerics as ``_``; JSON values as JSON strings."""
    return {env_name(k, prefix): env_value(v) for k, v in config.items()}


def render_text(config: dict[str, Any], fmt: str) -> str:
    if fmt == "env":
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in environment(config).items())
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(config, sort_keys=True, allow_unicode=True))
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@api
def render(
    name: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help="env, json or yaml")] = "env",
) -> None:
    """Print the resolved config, for entrypoint scripts: eval "$(konfig render NAME)"."""
    if fmt not in ("env", "json", "yaml"):
        raise typer.BadParameter("--format must be env, json or yaml")
    sys.stdout.write(render_text(resolved(name), fmt))


@api
def run(
    name: str,
    command: Annotated[list[str], typer.Argument(metavar="-- COMMAND...")],
    watch: Annotated[bool, typer.Option(help="Restart COMMAND when the config changes")] = False,
    prefix: Annotated[str, typer.Option(help="Put this before every variable name")] = "",
) -> None:
    """Run COMMAND with the resolved config as environment variables."""
    env = os.environ | environment(resolved(name), prefix)
    if not watch:
        sys.stdout.flush()
        try:
            os.execvpe(command[0], command, env)  # noqa: S606 - running the user's command is the point
        except OSError as exc:
            raise fail(f"cannot run {command[0]}: {exc.strerror}", 127) from None
    raise typer.Exit(_run_watching(name, command, prefix))


def _run_watching(name: str, command: list[str], prefix: str) -> int:
    raise NotImplementedError


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
    app.add_typer(ns_app, name="ns")
    app.command()(get)
    app.command("set")(set_)
    app.command()(unset)
    app.command()(render)
    app.command()(run)
