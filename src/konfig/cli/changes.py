"""``konfig cr``: change requests on protected namespaces, and ``konfig cr policies``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from konfig.cli.output import Output, OutputOption, dump, note, out, show
from konfig.cli.session import api, konfig

cr_app = typer.Typer(
    help="Change requests: writes to protected namespaces, reviewed before they commit.",
    no_args_is_help=True,
)
policies_app = typer.Typer(
    help="Protection policies: which namespaces change only through change requests.",
    no_args_is_help=True,
)

REQUEST_COLUMNS = ["id", "namespace", "status", "title", "author_name", "keys", "approvals"]
POLICY_COLUMNS = ["id", "namespaces", "approvals_required", "approvers", "enforcement"]
Comment = Annotated[str | None, typer.Option("-m", "--comment", help="Said with it")]


def _row(request: dict[str, Any]) -> dict[str, Any]:
    return request | {
        "keys": ",".join(request["keys"]),
        "approvals": f"{request['approvals']}/{request['approvals_required']}",
    }


def proposed(written: dict[str, Any]) -> bool:
    """Whether a write's answer is the change request it went into (a protected namespace)."""
    return "approvals_required" in written and "keys" in written


def tell_proposed(request: dict[str, Any]) -> None:
    note(
        f"{request['namespace']} is protected: proposed in change request {request['id']} "
        f"({request['status']}); submit it with: konfig cr submit {request['id']}"
    )


@cr_app.command("list")
@api
def list_requests(
    namespace: Annotated[str | None, typer.Option(help="Only this namespace's")] = None,
    status: Annotated[
        str | None, typer.Option(help="draft, open, approved, rejected or merged")
    ] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only the ones you wrote")] = False,
    waiting: Annotated[
        bool, typer.Option("--waiting", help="Only the ones waiting for your review")
    ] = False,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    output: OutputOption = Output.table,
) -> None:
    """Change requests, newest first."""
    client = konfig()
    namespace_id = None if namespace is None else client.namespaces.get(namespace)["id"]
    found = client.change_requests.list(
        namespace_id=namespace_id, status=status, mine=mine, waiting_for_me=waiting, limit=limit
    )
    show([_row(r) for r in found] if output is Output.table else found, output, REQUEST_COLUMNS)


@cr_app.command("show")
@api
def show_request(
    request_id: str,
    reveal: Annotated[bool, typer.Option("--reveal", help="Show secret values")] = False,
    output: OutputOption = Output.table,
) -> None:
    """A change request: its diff and its conversation."""
    request = konfig().change_requests.get(request_id, reveal=reveal)
    if output is not Output.table:
        dump(request, output)
        return
    out.print(f"{request['title']}  [{request['status']}]", markup=False)
    out.print(
        f"{request['namespace']} · by {request['author_name'] or request['author']} · "
        f"approvals {request['approvals']}/{request['approvals_required']}",
        markup=False,
    )
    for change in request["changes"]:
        before = change["before"]["value"] if change["before"] else None
        after = change["after"]["value"] if change["after"] else None
        moved = "  (changed since: conflict)" if change["conflict"] else ""
        out.print(
            f"  {change['action']:6} {change['key']}: {before!r} → {after!r}{moved}", markup=False
        )
    for event in request["events"]:
        who = event["actor_name"] or event["actor"]
        said = f": {event['body']}" if event["body"] else ""
        out.print(f"  {event['created_at']} {who} {event['kind']}{said}", markup=False)


@cr_app.command("submit")
@api
def submit(
    request_id: str,
    title: Annotated[str | None, typer.Option(help="What it changes and why")] = None,
) -> None:
    """Hand your draft over for review."""
    done = konfig().change_requests.submit(request_id, title=title)
    note(f"change request {done['id']} is {done['status']}")


@cr_app.command("approve")
@api
def approve(request_id: str, comment: Comment = None) -> None:
    """Approve an open change request."""
    done = konfig().change_requests.approve(request_id, comment=comment)
    note(f"approved: {done['approvals']}/{done['approvals_required']}, {done['status']}")


@cr_app.command("reject")
@api
def reject(request_id: str, comment: Comment = None) -> None:
    """Reject a change request (or withdraw your own)."""
    konfig().change_requests.reject(request_id, comment=comment)
    note(f"rejected {request_id}")


@cr_app.command("merge")
@api
def merge(request_id: str) -> None:
    """Commit an approved change request as one revision."""
    done = konfig().change_requests.merge(request_id)
    note(f"merged {done['id']} into {done['namespace']} as revision {done['merged_revision']}")


@cr_app.command("comment")
@api
def comment(request_id: str, body: str) -> None:
    """Add to a change request's conversation."""
    konfig().change_requests.comment(request_id, body)
    note("commented")


@policies_app.command("list")
@api
def list_policies(output: OutputOption = Output.table) -> None:
    """The tenant's protection policies."""
    show(konfig().protection.list(), output, POLICY_COLUMNS)


@policies_app.command("create")
@api
def create_policy(
    namespaces: Annotated[str, typer.Argument(help="A namespace pattern, e.g. '*/production'")],
    approvals: Annotated[int, typer.Option(min=1, help="Approvals required")] = 1,
    role: Annotated[list[str] | None, typer.Option(help="An approving role (repeatable)")] = None,
    group: Annotated[list[str] | None, typer.Option(help="An approving group (repeatable)")] = None,
    self_approval: Annotated[
        bool, typer.Option("--self-approval", help="Authors may approve their own")
    ] = False,
    soft: Annotated[
        bool, typer.Option("--soft", help="Admins may bypass with a reason (default: hard)")
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Protect the namespaces a pattern matches (admins)."""
    approvers = [{"role": r} for r in role or []] + [{"group": g} for g in group or []]
    created = konfig().protection.create(
        namespaces,
        approvals_required=approvals,
        approvers=approvers,
        allow_self_approval=self_approval,
        enforcement="soft" if soft else "hard",
    )
    show(created, output, POLICY_COLUMNS)


@policies_app.command("delete")
@api
def delete_policy(policy_id: str) -> None:
    """Remove a protection policy (admins)."""
    konfig().protection.delete(policy_id)
    note(f"deleted protection policy {policy_id}")


def register(app: typer.Typer) -> None:
    cr_app.add_typer(policies_app, name="policies")
    app.add_typer(cr_app, name="cr")
