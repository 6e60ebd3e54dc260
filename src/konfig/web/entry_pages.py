"""Adding, editing and deleting entries, with the server's verdict next to each field."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.configs import service as configs
from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import ConfigCreate, ConfigPatch
from konfig.errors import Conflict, Forbidden, PayloadTooLarge, PreconditionFailed, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.revisions.writer import Proposed
from konfig.state import state_of
from konfig.web.change_pages import bypassing, proposed
from konfig.web.forms import (
    EntryForm,
    form_for_entry,
    parse_entry_form,
    place_schema_errors,
    place_server_errors,
    text,
    with_rules_of,
)
from konfig.web.namespace_pages import namespace_page, policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)


def _anchor(key: str) -> str:
    return f"entry-{key}"


@router.post("/namespaces/{namespace_id}/entries")
async def add_entry(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Add an entry (editors); on a problem the form comes back with it next to the field."""
    submitted = await visitor.request.form()
    entry = parse_entry_form(submitted, keep_secret=False)
    status_code = 422
    if not entry.errors:
        try:
            payload = ConfigCreate(
                key=entry.key,
                value=entry.value,
                value_type=entry.value_type,
                validation_schema=entry.schema,
                description=entry.description,
                is_secret=entry.is_secret,
                message=entry.message,
            )
        except ValidationError as exc:
            place_schema_errors(entry, exc)
        else:
            try:
                with bypassing(text(submitted, "bypass_reason")):
                    created = await configs.create(
                        visitor.session,
                        writer=state_of(visitor.request).entry_writer,
                        principal=visitor.principal,
                        namespace_id=namespace_id,
                        payload=payload,
                        message=None,
                        if_none_match=None,
                    )
            except (ValidationFailed, PayloadTooLarge) as exc:
                status_code = exc.status_code
                place_server_errors(entry, exc)
            except Proposed as done:
                return proposed(visitor, done.proposal)
            except Conflict as exc:
                status_code = 409
                taken = exc.message.split(":")[0]
                entry.errors["key"] = f"{taken}: choose another key, or edit that one."
            else:
                return redirect(
                    visitor.request,
                    f"/ui/namespaces/{namespace_id}#{_anchor(created.key)}",
                    flash=f"Added {created.key} (revision {created.revision}).",
                )
    await visitor.restart()
    return await namespace_page(visitor, namespace_id, status_code=status_code, add_form=entry)


async def _editor(
    visitor: Visitor, namespace_id: uuid.UUID, form: EntryForm, *, status_code: int = 200
) -> Response:
    found = await namespaces.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    namespace = await namespaces.render_one(visitor.session, namespace=found)
    return page(
        visitor.request,
        "entry.html",
        visitor,
        status_code=status_code,
        namespace=namespace,
        segments=namespace.name.split("/"),
        form=form,
        protection=found.protection,
    )


def _stored_form(visitor: Visitor, current: ConfigEntry) -> EntryForm:
    """The editor filled in with the entry as stored (a secret's value left out)."""
    shown = configs.render(policy_of(visitor), current, reveal=False)
    return form_for_entry(
        key=shown.key,
        value=shown.value,
        value_type=shown.value_type,
        schema=shown.validation_schema,
        description=shown.description,
        is_secret=shown.is_secret,
        version=shown.version,
    )


@router.get("/namespaces/{namespace_id}/entries/{key}")
async def edit_entry_form(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """The editor for one entry, filled in (a secret's value is never sent to the page)."""
    current = await configs.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id, key=key
    )
    if current.value_type == "flag":  # flags have a page of their own
        return redirect(visitor.request, f"/ui/namespaces/{namespace_id}/flags/{key}")
    return await _editor(visitor, namespace_id, _stored_form(visitor, current))


@router.post("/namespaces/{namespace_id}/entries/{key}")
async def save_entry(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """Save the editor: the change applies only to the version that was opened (If-Match)."""
    current = await configs.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id, key=key
    )
    submitted = await visitor.request.form()
    # An editor's form shows the rules read-only and sends none: the value is read under the
    # stored rules, which stay. A form that sends them has them checked by the service (an
    # editor changing them is refused there, as on the API).
    rules_sent = "value_type" in submitted
    fields = submitted if rules_sent else with_rules_of(submitted, _stored_form(visitor, current))
    form = parse_entry_form(fields, key=key, keep_secret=current.is_secret)
    status_code = 422
    if not form.errors:
        changes: dict[str, Any] = {"description": form.description, "message": form.message}
        if rules_sent:
            changes |= {
                "value_type": form.value_type,
                "validation_schema": form.schema,
                "is_secret": form.is_secret,
            }
        if form.has_value:
            changes["value"] = form.value
        try:
            payload = ConfigPatch(**changes)
            with bypassing(text(submitted, "bypass_reason")):
                saved = await configs.patch(
                    visitor.session,
                    writer=state_of(visitor.request).entry_writer,
                    principal=visitor.principal,
                    namespace_id=namespace_id,
                    key=key,
                    payload=payload,
                    message=None,
                    if_match=configs.etag(form.version) if form.version else None,
                )
        except ValidationError as exc:
            place_schema_errors(form, exc)
        except Proposed as done:
            return proposed(visitor, done.proposal)
        except (ValidationFailed, PayloadTooLarge) as exc:
            status_code = exc.status_code
            place_server_errors(form, exc)
        except Forbidden as exc:
            # Shown beside the form, its audit row written in this request's own transaction
            # (a page raised instead would write it in a second one, which SQLite's write lock,
            # held by this one, would keep waiting).
            await visitor.refused(exc)
            form.errors["form"] = f"{exc.message[0].upper()}{exc.message[1:]}."
            return await _editor(visitor, namespace_id, form, status_code=403)
        except PreconditionFailed:
            status_code = 412
            form.errors["form"] = (
                f"Someone else saved {key} while you were editing it. Your changes are still "
                "in the form: open the entry again to see the current version, then reapply them."
            )
        else:
            return redirect(
                visitor.request,
                f"/ui/namespaces/{namespace_id}#{_anchor(key)}",
                flash=f"Saved {key} (revision {saved.revision}).",
            )
    await visitor.restart()
    return await _editor(visitor, namespace_id, form, status_code=status_code)


@router.post("/namespaces/{namespace_id}/entries/{key}/delete")
async def delete_entry(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """Delete an entry (its history stays)."""
    version = text(await visitor.request.form(), "version")
    try:
        await configs.delete(
            visitor.session,
            writer=state_of(visitor.request).entry_writer,
            principal=visitor.principal,
            namespace_id=namespace_id,
            key=key,
            message=None,
            if_match=configs.etag(int(version)) if version.isdigit() else None,
        )
    except Proposed as done:
        return proposed(visitor, done.proposal)
    except PreconditionFailed:
        await visitor.restart()
        return redirect(
            visitor.request,
            f"/ui/namespaces/{namespace_id}#{_anchor(key)}",
            flash=f"{key} was changed by someone else just now, so it was not deleted. "
            "Check its new value and delete it again if you still want to.",
        )
    return redirect(visitor.request, f"/ui/namespaces/{namespace_id}", flash=f"Deleted {key}.")
