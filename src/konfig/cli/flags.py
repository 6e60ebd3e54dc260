"""``konfig flags``: feature flags (entries of value type ``flag``) and their evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from konfig.cli.output import Output, OutputOption, dump, fail, note, show
from konfig.cli.session import api, konfig

flags_app = typer.Typer(
    help="Feature flags: flagd-shaped entries evaluated over OpenFeature's OFREP.",
    no_args_is_help=True,
)
COLUMNS = [
    "key",
    "state",
    "default_variant",
    "variants",
    "evaluations",
    "last_evaluated_at",
    "stale",
]

NamespaceArg = Annotated[str, typer.Argument(help="The namespace, e.g. shop/production")]
KeyArg = Annotated[str, typer.Argument(help="The flag's key")]


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{what} is not JSON: {exc}") from None


@flags_app.command("list")
@api
def list_flags(namespace: NamespaceArg, output: OutputOption = Output.table) -> None:
    """The namespace's flags: state, variants, evaluations counted, last evaluated, stale."""
    found = konfig().flags.list(namespace)
    if output is Output.table:
        found = [f | {"variants": ", ".join(f["variants"])} for f in found]
    show(found, output, COLUMNS)


@flags_app.command("stale")
@api
def stale(output: OutputOption = Output.table) -> None:
    """Flags neither changed nor evaluated for the server's KONFIG_FLAG_STALE_DAYS."""
    found = konfig().flags.stale()
    if output is Output.table:
        found = [f | {"variants": ", ".join(f["variants"])} for f in found]
    show(found, output, ["namespace", *COLUMNS])


@flags_app.command("get")
@api
def get(namespace: NamespaceArg, key: KeyArg, output: OutputOption = Output.json) -> None:
    """One flag's definition, as stored (flagd's shape)."""
    entry = konfig().configs.get(namespace, key)
    if entry["value_type"] != "flag":
        raise fail(f"{key} is not a flag (its value type is {entry['value_type']})")
    dump(entry["value"], Output.yaml if output is Output.yaml else Output.json)


@flags_app.command("set")
@api
def set_(
    namespace: NamespaceArg,
    key: KeyArg,
    definition: Annotated[
        str | None, typer.Argument(help="The flag as JSON (or use --file)", show_default=False)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A JSON file holding the flag")
    ] = None,
) -> None:
    """Write a flag: {"state", "variants", "defaultVariant", "targeting"?, "metadata"?}."""
    if (definition is None) == (file is None):
        raise fail("give the flag as JSON or with --file, one of the two")
    text = definition if definition is not None else Path(file or "").read_text()
    written = konfig().flags.set(namespace, key, _json(text, "the flag"))
    note(f"{key}: version {written['version']}, revision {written['revision']}")


@flags_app.command("enable")
@api
def enable(namespace: NamespaceArg, key: KeyArg) -> None:
    """Turn the flag on: its targeting applies again."""
    konfig().flags.enable(namespace, key)
    note(f"{key} enabled")


@flags_app.command("disable")
@api
def disable(namespace: NamespaceArg, key: KeyArg) -> None:
    """The kill switch: every evaluation answers the default variant (reason DISABLED)."""
    konfig().flags.disable(namespace, key)
    note(f"{key} disabled: every evaluation answers its default variant")


@flags_app.command("eval")
@api
def evaluate(
    namespace: NamespaceArg,
    key: KeyArg,
    context: Annotated[
        str, typer.Option("--context", "-c", help="The evaluation context as JSON")
    ] = "{}",
    targeting_key: Annotated[
        str | None, typer.Option("--targeting-key", "-k", help="Sets context.targetingKey")
    ] = None,
    output: OutputOption = Output.json,
) -> None:
    """Evaluate a flag as a service would (OFREP): value, variant and reason."""
    evaluation_context = _json(context, "--context")
    if not isinstance(evaluation_context, dict):
        raise fail("--context must be a JSON object")
    if targeting_key is not None:
        evaluation_context["targetingKey"] = targeting_key
    answer = konfig().flags.evaluate(key, evaluation_context, namespace=namespace)
    dump(answer, Output.yaml if output is Output.yaml else Output.json)


def register(app: typer.Typer) -> None:
    app.add_typer(flags_app, name="flags")
