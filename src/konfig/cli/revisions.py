"""History and revisions: history, diff, rollback, export, import."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from konfig.cli.output import Output, OutputOption, cell, dump, err, fail, note, out, show
from konfig.cli.session import api, konfig

FORMATS = ("yaml", "json", "env", "properties")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "env"}
SUFFIXES[".properties"] = "properties"
PROGRESS_AFTER = 1.0  # seconds an import runs before it shows its progress
CHUNK = 64 * 1024

Reveal = Annotated[bool, typer.Option(help="Show secret values (editors)")]
DryRun = Annotated[bool, typer.Option(help="Show what would change; change nothing")]
Message = Annotated[str | None, typer.Option("-m", "--message", help="Why")]


@api
def history(
    namespace: str,
    key: Annotated[
        str | None, typer.Argument(help="One key's versions; omit for revisions")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    reveal: Reveal = False,
    output: OutputOption = Output.table,
) -> None:
    """A namespace's revisions, or one key's versions, newest first."""
    if key is None:
        revisions = konfig().revisions.list(namespace, limit=limit)
        if output is Output.table:
            revisions = [_readable(r, keys=", ".join(r["keys"])) for r in revisions]
        show(revisions, output, ["revision", "actor", "message", "keys", "created_at"])
        return
    versions = konfig().configs.history(namespace, key, reveal=reveal, limit=limit)
    if output is Output.table:  # a deletion has no value: an empty cell, not JSON's null
        versions = [
            _readable(v, value="" if v["action"] == "delete" else v["value"]) for v in versions
        ]
    show(versions, output, ["version", "revision", "action", "value", "actor", "created_at"])


def _readable(row: dict[str, Any], **shown: Any) -> dict[str, Any]:
    """A history row for the table: the actor's email where the server gave one, and empty
    cells for what is not there (no message), rather than ``null``."""
    readable = {name: "" if value is None else value for name, value in row.items()}
    return readable | {"actor": row.get("actor_email") or row["actor"]} | shown


def show_diff(diff: dict[str, Any], output: Output) -> None:
    if output is not Output.table:
        dump(diff, output)
        return
    for sign, group in (("+", "added"), ("-", "removed"), ("~", "changed")):
        for item in diff[group]:
            old = cell(item["old"]["value"]) if item.get("old") else ""
            new = cell(item["new"]["value"]) if item.get("new") else ""
            arrow = f"{old} -> {new}" if sign == "~" else new or old
            out.print(f"{sign} {item['key']}: {arrow}", markup=False)
    if not any(diff[group] for group in ("added", "removed", "changed")):
        note("no differences")


@api
def diff(
    namespace: str,
    from_revision: Annotated[int, typer.Argument(metavar="FROM", min=0)],
    to_revision: Annotated[
        int | None, typer.Argument(metavar="[TO]", min=0, help="Default: the latest")
    ] = None,
    reveal: Reveal = False,
    output: OutputOption = Output.table,
) -> None:
    """Keys added (+), removed (-) and changed (~) between two revisions."""
    show_diff(konfig().revisions.diff(namespace, from_revision, to_revision, reveal=reveal), output)


@api
def rollback(
    namespace: str,
    revision: Annotated[
        int | None, typer.Argument(min=0, help="Restore the namespace as it was then")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Roll back only this key ...")] = None,
    version: Annotated[int | None, typer.Option(min=1, help="... to this version of it")] = None,
    dry_run: DryRun = False,
    message: Message = None,
    output: OutputOption = Output.table,
) -> None:
    """Restore a namespace to a revision, or one key (--key --version) to a version."""
    if key is not None or version is not None:
        if key is None or version is None or revision is not None:
            raise typer.BadParameter("give --key and --version together, without a REVISION")
        if dry_run:
            raise typer.BadParameter("--dry-run is for a namespace rollback")
        entry = konfig().configs.rollback(namespace, key, version, message=message)
        show(entry, output, ["key", "value_type", "value", "version", "revision"])
        return
    if revision is None:
        raise typer.BadParameter("give a REVISION, or --key and --version")
    result = konfig().revisions.rollback(namespace, revision, dry_run=dry_run, message=message)
    show_diff(result["diff"], output)
    if output is Output.table:
        verb = "would roll back" if dry_run else "rolled back"
        note(f"{verb} {namespace} to revision {revision}: now at {result['revision']}")


@api
def export(
    namespace: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help=", ".join(FORMATS))] = "yaml",
    revision: Annotated[int | None, typer.Option(min=0, help="A past revision")] = None,
    reveal: Reveal = False,
    to: Annotated[Path | None, typer.Option("--to", help="Write to this file, not stdout")] = None,
) -> None:
    """Export a namespace as yaml, json, env or properties."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    text = konfig().revisions.export(namespace, format=fmt, reveal=reveal, revision=revision)
    if to is None:
        sys.stdout.write(text)
    else:
        to.write_text(text, encoding="utf-8")
        note(f"wrote {to}")


def _chunks(path: Path, progress: Progress, task: TaskID, waiting: str) -> Iterator[bytes]:
    """The file in chunks, advancing ``progress`` as httpx sends them; once all is sent, the
    task says the server is at work."""
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            progress.update(task, advance=len(chunk))
            yield chunk
    progress.update(task, description=waiting)


def summary(diff: dict[str, Any]) -> str:
    """``+N ~N -N``: keys added, changed and removed."""
    return f"+{len(diff['added'])} ~{len(diff['changed'])} -{len(diff['removed'])}"


@api
def import_(
    namespace: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="Default: from the file's extension")
    ] = None,
    mode: Annotated[str, typer.Option(help="merge: add and change; replace: also delete")] = (
        "merge"
    ),
    dry_run: DryRun = False,
    message: Message = None,
    output: OutputOption = Output.table,
) -> None:
    """Import a yaml, json, env or properties file into a namespace, as one revision."""
    fmt = fmt or SUFFIXES.get(file.suffix.lower())
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if mode not in ("merge", "replace"):
        raise typer.BadParameter("--mode must be merge or replace")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    progress = Progress(*columns, TransferSpeedColumn(), console=err, transient=True)
    task = progress.add_task(f"uploading {file.name}", total=file.stat().st_size)
    waiting = f"importing {file.name} into {namespace}"
    # Shown for any import that takes longer than PROGRESS_AFTER, however small the file.
    shown = threading.Timer(PROGRESS_AFTER, progress.start)
    shown.start()
    try:
        result = konfig().revisions.import_(
            namespace,
            _chunks(file, progress, task, waiting),
            format=fmt,
            mode=mode,
            dry_run=dry_run,
            message=message,
        )
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    finally:
        shown.cancel()
        shown.join()
        progress.stop()
    show_diff(result["diff"], output)
    if output is Output.table:
        verb = "would import" if dry_run else "imported"
        changes = summary(result["diff"])
        note(f"{verb} {file} into {namespace}: {changes}, now at revision {result['revision']}")


def register(app: typer.Typer) -> None:
    app.command()(history)
    app.command()(diff)
    app.command()(rollback)
    app.command()(export)
    app.command("import")(import_)
