"""Client commands: they talk to a Konfig server through the SDK, never to its database."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from konfig.cli import (
    changes,
    clients,
    credentials,
    flags,
    loopback,
    resolved,
    revisions,
    tokens,
    users,
    webhooks,
)
from konfig.cli.output import Output, OutputOption, dump, fail, note, out, show
from konfig.cli.session import api, konfig
from konfig.client import UNSET, Konfig, KonfigError, NotFound

# --- login ------------------------------------------------------------------------------------


def login(
    url: Annotated[str | None, typer.Option(help="Server URL (KONFIG_URL)")] = None,
    email: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    sso: Annotated[
        bool, typer.Option("--sso", help="Sign in through your organisation's provider")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="Your organisation (with --sso)")] = None,
    browser: Annotated[
        bool, typer.Option(help="Open the browser (else only print the sign-in URL)")
    ] = True,
) -> None:
    """Log in and keep the tokens in a file only you can read.

    With --sso: a browser signs you in at your organisation's provider and hands the login to
    this command on a loopback port (127.0.0.1) it listens on for five minutes."""
    url = (url or credentials.load().url or typer.prompt("Server URL")).rstrip("/")
    if sso:
        tenant = tenant or typer.prompt("Organisation")
        tokens = loopback.sign_in(url, tenant, open_browser=browser)
        if tokens is None:
            raise fail("no sign-in arrived from the browser within 5 minutes")
        _keep(url, tokens, None)
        return
    email = email or typer.prompt("Email")
    password = password or typer.prompt("Password", hide_input=True)
    try:
        with Konfig(url) as client:
            tokens = client.auth.login(email, password)
    except KonfigError as exc:
        raise fail(exc.message) from None
    _keep(url, tokens, email)


def _keep(url: str, tokens: dict[str, Any], email: str | None) -> None:
    try:
        with Konfig(url, tokens["access_token"]) as client:
            me = client.auth.me()
    except KonfigError as exc:
        raise fail(exc.message) from None
    email = email or str(me["email"])
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


def parse_schema(raw: str | None) -> Any:
    """``--schema``: a JSON object, or ``null`` to drop the schema; None when not given."""
    if raw is None:
        return UNSET
    try:
        schema = json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"--schema is not JSON: {exc}") from None
    if schema is not None and not isinstance(schema, dict):
        raise typer.BadParameter("--schema must be a JSON object, or null to drop the schema")
    return schema


def stored_type(namespace: str, key: str) -> str | None:
    """The type the entry has now (None: there is no such entry yet)."""
    try:
        return str(konfig().configs.get(namespace, key)["value_type"])
    except NotFound:
        return None


@api
def set_(
    namespace: str,
    assignments: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...")],
    value_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="string, number, boolean, select or json; left out: the entry's own "
            "(string for a new key)",
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema", help="Validation rules as JSON, e.g. '{\"max_value\": 10}'; null drops them"
        ),
    ] = None,
    secret: Annotated[
        bool | None,
        typer.Option("--secret/--no-secret", help="Mask it and audit reveals; left out: kept"),
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="What the entry is for; left out: kept")
    ] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="Why")] = None,
    bypass_reason: Annotated[
        str | None,
        typer.Option(
            "--bypass-reason",
            help="On a protected namespace under soft enforcement: commit directly (admins), "
            "for this reason, audited",
        ),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Set values: konfig set payments/production max_connections=100.

    Only the value changes: an entry keeps its type, rules, description and secret flag unless
    --type, --schema, --secret/--no-secret or --description say otherwise (changing the type,
    rules or secret flag of an existing entry needs an admin). A value is read as the entry's
    type (max_connections=100 is the number 100 when the entry is a number).
    """
    if value_type is not None and value_type not in TYPES:
        raise typer.BadParameter(f"--type must be one of {', '.join(TYPES)}")
    rules = parse_schema(schema)
    parsed: list[tuple[str, Any]] = []
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{assignment!r}: write KEY=VALUE")
        as_type = value_type or stored_type(namespace, key) or "string"
        parsed.append((key, parse_value(raw, as_type)))
    written = [
        konfig().configs.set(
            namespace,
            key,
            value,
            value_type=value_type,
            secret=secret,
            description=description,
            validation_schema=rules,
            message=message,
            bypass_reason=bypass_reason,
        )
        for key, value in parsed
    ]
    for request in {r["id"]: r for r in written if changes.proposed(r)}.values():
        changes.tell_proposed(request)
    shown = [w for w in written if not changes.proposed(w)]
    if shown or output is not Output.table:
        show(shown, output, ENTRY_COLUMNS)


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


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
    app.add_typer(ns_app, name="ns")
    app.command()(get)
    app.command("set")(set_)
    app.command()(unset)
    revisions.register(app)
    resolved.register(app)
    tokens.register(app)
    users.register(app)
    webhooks.register(app)
    changes.register(app)
    flags.register(app)
    clients.register(app)
