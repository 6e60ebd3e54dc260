"""``konfig backup …`` without ``--tenant``: through the API, as the logged-in admin."""

from __future__ import annotations

from konfig.cli.output import Output, dump, note, out, show
from konfig.cli.session import api, konfig

COLUMNS = ["id", "trigger", "namespace_count", "entry_count", "size_bytes", "valid", "problem"]


@api
def create(output: Output = Output.table) -> None:
    made = konfig().backups.create()
    if output is Output.table:
        out.print(made["id"], markup=False)  # the id alone on stdout, for scripts
        note(
            f"backup {made['id']}: {made['namespace_count']} namespaces, "
            f"{made['entry_count']} entries, {made['size_bytes']} bytes"
        )
    else:
        dump(made, output)


@api
def list_backups(output: Output = Output.table) -> None:
    show(konfig().backups.list(), output, COLUMNS)


@api
def restore(
    backup_id: str, *, dry_run: bool, namespaces: list[str] | None, output: Output = Output.table
) -> None:
    result = konfig().backups.restore(backup_id, dry_run=dry_run, namespaces=namespaces)
    if output is not Output.table:
        dump(result, output)
        return
    for ns in result["namespaces"]:
        added, removed, changed = ns["added"], ns["removed"], ns["changed"]
        written = f"revision {ns['revision']}" if ns["revision"] is not None else "no new revision"
        state = "created " if ns["created"] else ""
        out.print(
            f"{ns['name']}: +{len(added)} -{len(removed)} ~{len(changed)} ={ns['unchanged']} "
            f"{state}{'' if dry_run else written}".rstrip(),
            markup=False,
        )
        for sign, changes in (("+", added), ("-", removed), ("~", changed)):
            for change in changes:
                out.print(f"  {sign} {change['key']}", markup=False)
    note(f"{'would restore' if dry_run else 'restored'} backup {backup_id}")
