"""Whole-namespace reads and writes: the document, import and export (yaml, json, env, properties).

Every write here is one revision through ``commit_changes``. A masked secret (``********``) in a
document or import stands for the value already stored, so an export made without ``reveal``
can be edited and imported back without losing its secrets.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.guardrails import changed_rules, check_rules
from konfig.configs.schemas import KEPT_FIELDS, KEY_PATTERN, MASK
from konfig.configs.types import Limits, Problem, check_entry
from konfig.errors import Conflict, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.revisions import formats, repository
from konfig.revisions.formats import FlatFormat, FlatLine, Format, StructuredFormat
from konfig.revisions.schemas import ChangeResult, Document, DocumentEntry
from konfig.revisions.service import (
    State,
    check_revision_match,
    diff_states,
    differing_fields,
    secret_keys,
    shown_as,
    state_of_entry,
    state_of_version,
)
from konfig.revisions.writer import (
    EntryDraft,
    WritePolicy,
    commit_changes,
    lock_namespace,
    validation_error,
)
from konfig.users.models import Role

Mode = Literal["merge", "replace"]
Builder = Callable[[dict[str, State]], tuple[list[EntryDraft], dict[str, list[Problem]]]]
_PARSE_IN_THREAD = 64 * 1024


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exported:
    key: str
    state: State
    masked: bool

    def as_document_entry(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": MASK if self.masked else self.state.value,
            "value_type": self.state.value_type,
            "validation_schema": self.state.validation_schema,
            "description": self.state.description,
            "is_secret": self.state.is_secret,
        }


async def namespace_entries(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    namespace: Namespace,
    revision: int,
    reveal: bool,
    with_secrets: bool = True,
) -> list[Exported]:
    """The namespace at ``revision``, by key; secrets masked unless revealed, or left out."""
    live = await repository.snapshot(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, revision=revision
    )
    secret = await repository.secret_now(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, keys=list(live)
    )
    if reveal and with_secrets:
        await audit.record_reveal(
            session,
            namespace=namespace.name,
            keys=[k for k, v in live.items() if v.is_secret or k in secret],
            via=f"document at revision {revision}",
        )
    found = []
    for key, version in live.items():
        is_secret = version.is_secret or key in secret
        if is_secret and not with_secrets:
            continue
        masked = is_secret and not reveal
        state = (
            State(
                None,
                version.value_type,
                version.validation_schema,
                version.description,
                version.is_secret,
                version.version,
            )
            if masked
            else state_of_version(policy, version)
        )
        found.append(Exported(key, state, masked))
    return found


async def _readable(
    session: AsyncSession,
    principal: Principal,
    namespace_id: uuid.UUID,
    revision: int | None,
    *,
    reveal: bool,
) -> tuple[Namespace, int]:
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )
    revision = namespace.revision if revision is None else revision
    if revision > namespace.revision:
        raise ValidationFailed(
            f"namespace {namespace.name} has no revision {revision} (its latest is "
            f"{namespace.revision})",
            {"rule": "revision", "latest_revision": namespace.revision},
        )
    return namespace, revision


async def document(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    reveal: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The namespace's entries in document shape, and the revision they are at (the ETag)."""
    namespace, revision = await _readable(session, principal, namespace_id, None, reveal=reveal)
    found = await namespace_entries(
        session, policy=policy, namespace=namespace, revision=revision, reveal=reveal
    )
    return [e.as_document_entry() for e in found], revision


def render_flat(kind: FlatFormat, entries: list[Exported], header: str) -> bytes:
    lines: list[tuple[str, str]] = []
    owners: dict[str, str] = {}
    for entry in entries:
        value, value_type = entry.state.value, entry.state.value_type
        if entry.masked:  # one line holding the bare mask, whatever the type
            value, value_type = MASK, "string"
        for path, text in formats.flatten(value, value_type):
            name = formats.flat_name(kind, entry.key, path)
            if name in owners:
                raise Conflict(
                    f"{owners[name]} and {entry.key} both become {name} in {kind} format: "
                    "export as yaml or json, or rename one of them",
                    {"name": name, "keys": sorted({owners[name], entry.key})},
                )
            owners[name] = entry.key
            lines.append((name, text))
    return formats.render_flat(kind, lines, header)


async def export(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    kind: Format,
    reveal: bool,
    revision: int | None,
) -> tuple[bytes, int]:
    """The namespace (now or at ``revision``) as a file, and the revision it shows."""
    namespace, revision = await _readable(session, principal, namespace_id, revision, reveal=reveal)
    found = await namespace_entries(
        session, policy=policy, namespace=namespace, revision=revision, reveal=reveal
    )
    header = f"konfig export of {namespace.name} at revision {revision}"
    if any(e.masked for e in found):
        header += f"; secret values masked as {MASK} (importing the mask keeps the stored value)"
    if kind in ("env", "properties"):
        return render_flat(kind, found, header), revision
    body = {"entries": [e.as_document_entry() for e in found]}
    if kind == "json":
        return formats.dump_structured(body, "json"), revision
    return f"# {header}\n".encode() + formats.dump_structured(body, "yaml"), revision


# -- writing --------------------------------------------------------------------------------


def check_all(
    drafts: list[EntryDraft], limits: Limits, problems: dict[str, list[Problem]], *, values: bool
) -> None:
    """One error naming every bad entry: the builder's problems, repeated keys and (``values``)
    each draft's validation.

    A write that has found no problem yet leaves the values to ``commit_changes``, which checks
    every draft it writes; an unchanged draft equals a stored, already valid entry.
    """
    seen: set[str] = set()
    for draft in drafts:
        if draft.key in seen:
            problems.setdefault(draft.key, []).append(
                Problem("key", "unique", "the key appears more than once")
            )
        seen.add(draft.key)
    if values or problems:
        for draft in drafts:
            found = check_entry(
                draft.value_type,
                draft.value,
                draft.validation_schema,
                limits,
                secret=draft.is_secret,
            )
            if found:
                problems.setdefault(draft.key, []).extend(found)
    if problems:
        raise validation_error(problems)


async def current_states(
    session: AsyncSession, policy: WritePolicy, namespace: Namespace
) -> dict[str, State]:
    found = await repository.entries(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
    )
    return {e.key: state_of_entry(policy, e) for e in found}


async def apply(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    namespace: Namespace,
    actor: str,
    build: Builder,
    replace: bool,
    dry_run: bool,
    message: str | None,
    reveal: bool,
    principal: Principal | None,
    keep_absent_secrets: bool = False,
) -> ChangeResult:
    """Plan the change from the current state, then (unless a dry run) commit it as one revision.

    ``namespace`` must be locked unless this is a dry run. With ``replace`` every key the build
    leaves out is deleted (secret ones kept when ``keep_absent_secrets``). ``principal`` is who
    asks (changing an existing key's rules needs an admin); None: an operator at the server.
    """
    current = await current_states(session, policy, namespace)
    drafts, problems = build(current)
    if principal is not None:
        check_rules(
            principal,
            {d.key: changed_rules(current[d.key], d) for d in drafts if d.key in current},
        )
    check_all(drafts, policy.limits, problems, values=dry_run)
    desired = {d.key: State.of_draft(d) for d in drafts}
    deletes = [
        key
        for key, state in current.items()
        if replace and key not in desired and not (keep_absent_secrets and state.is_secret)
    ]
    old: dict[str, State] = {key: current[key] for key in deletes}
    new: dict[str, State] = {}
    for key, state in desired.items():
        before = current.get(key)
        if before is None or differing_fields(before, state):
            new[key] = state
            if before is not None:
                old[key] = before
    secret_now = {k for k, s in current.items() if s.is_secret}
    if reveal:
        await audit.record_reveal(
            session, namespace=namespace.name, keys=secret_keys(old, new, secret_now), via="diff"
        )
    show = shown_as(reveal=reveal, secret_now=secret_now)
    previous = namespace.revision
    if dry_run or not (new or deletes):
        return ChangeResult(
            namespace_id=namespace.id,
            revision=previous,
            previous_revision=previous,
            committed=False,
            dry_run=dry_run,
            diff=diff_states(old, new, from_revision=previous, to_revision=None, show=show),
        )
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        actor=actor,
        upserts=[state.draft(key) for key, state in new.items()],
        deletes=deletes,
        message=message,
        locked=namespace,
    )
    return ChangeResult(
        namespace_id=namespace.id,
        revision=outcome.namespace.revision,
        previous_revision=previous,
        committed=outcome.revision is not None,
        dry_run=False,
        diff=diff_states(old, new, from_revision=previous, to_revision=outcome.revision, show=show),
    )


def parse_document(data: Any) -> Document:
    """A ``Document`` from parsed data; errors name where, never the rejected value."""
    try:
        return Document.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        first = errors[0]
        where = ".".join(first["loc"]) or "document"
        raise ValidationFailed(
            f"{where}: {first['msg']}"
            + (f"; {len(errors) - 1} more problem(s) in details.errors" if len(errors) > 1 else ""),
            {"rule": "document", "errors": errors},
        ) from exc


async def load_document(body: bytes, kind: StructuredFormat) -> Document:
    if len(body) > _PARSE_IN_THREAD:  # a large body must not stall the other requests
        data = await asyncio.to_thread(formats.load_structured, body, kind)
    else:
        data = formats.load_structured(body, kind)
    return parse_document(data)


def document_builder(entries: list[DocumentEntry]) -> Builder:
    """Drafts from a document's entries: what an entry leaves out of an existing key keeps the
    key's setting (a secret stays secret unless the entry says ``is_secret: false``)."""

    def build(current: dict[str, State]) -> tuple[list[EntryDraft], dict[str, list[Problem]]]:
        problems: dict[str, list[Problem]] = {}
        drafts = []
        for e in entries:
            stored = current.get(e.key)
            draft = EntryDraft(
                e.key, e.value, e.value_type, e.validation_schema, e.description, e.is_secret
            )
            if stored is not None:
                kept = KEPT_FIELDS - e.model_fields_set
                draft = replace(draft, **{name: getattr(stored, name) for name in kept})
            if draft.value == MASK and stored is not None and stored.is_secret:
                draft = replace(draft, value=stored.value)
            elif draft.value == MASK and draft.is_secret:
                problems.setdefault(e.key, []).append(
                    Problem(
                        "value",
                        "masked",
                        f"the value is the mask {MASK} but no secret is stored under this key "
                        "to keep: give the real value",
                    )
                )
            drafts.append(draft)
        return drafts, problems

    return build


async def _writable(
    session: AsyncSession, namespace: Namespace, *, dry_run: bool, if_match: str | None
) -> Namespace:
    """``namespace`` (already checked writable), locked unless this is a dry run."""
    if not dry_run:
        namespace = await lock_namespace(
            session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
        )
    check_revision_match(if_match, namespace)
    return namespace


async def put_document(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    body: bytes,
    content_type: str | None,
    dry_run: bool,
    if_match: str | None,
    message: str | None,
    reveal: bool,
) -> ChangeResult:
    """Replace every entry of the namespace with the document's, in one revision."""
    principal.require(Role.editor)
    found = await namespaces.get(
        session,
        principal=principal,
        namespace_id=namespace_id,
        permission="write",
        reveal=reveal,
    )
    parsed = await load_document(body, formats.structured_format(content_type))
    namespace = await _writable(session, found, dry_run=dry_run, if_match=if_match)
    return await apply(
        session,
        policy=policy,
        namespace=namespace,
        actor=principal.actor,
        build=document_builder(parsed.entries),
        replace=True,
        dry_run=dry_run,
        message=parsed.message or message or "replace the document",
        reveal=reveal,
        principal=principal,
    )


async def import_file(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    body: bytes,
    content_type: str | None,
    kind: Format | None,
    mode: Mode,
    dry_run: bool,
    if_match: str | None,
    message: str | None,
    reveal: bool,
) -> ChangeResult:
    """Import a yaml, json, env or properties file: merge into the namespace or replace it."""
    principal.require(Role.editor)
    found = await namespaces.get(
        session,
        principal=principal,
        namespace_id=namespace_id,
        permission="write",
        reveal=reveal,
    )
    if kind is None and formats.media_type(content_type) == "text/plain":
        # A media type the import reads, but which of its formats? The parameter is missing.
        raise ValidationFailed(
            "format: a text/plain body needs ?format=env or ?format=properties",
            {"field": "format"},
        )
    if kind is None:
        try:
            kind = formats.structured_format(content_type)
        except formats.UnsupportedMediaType as exc:
            raise formats.UnsupportedMediaType(
                "say which format this is: ?format=yaml, json, env or properties", exc.details
            ) from exc
    if kind in ("json", "yaml"):
        parsed = await load_document(body, kind)
        build = document_builder(parsed.entries)
        message = parsed.message or message
    else:
        lines = formats.parse_flat(kind, formats.decode_text(body))  # type: ignore[arg-type]
        build = flat_builder(kind, lines, merge=mode == "merge")  # type: ignore[arg-type]
    namespace = await _writable(session, found, dry_run=dry_run, if_match=if_match)
    return await apply(
        session,
        policy=policy,
        namespace=namespace,
        actor=principal.actor,
        build=build,
        replace=mode == "replace",
        dry_run=dry_run,
        message=message or f"import {kind} ({mode})",
        reveal=reveal,
        principal=principal,
    )


# -- env and properties back into entries ---------------------------------------------------


def _number(text: str) -> int | float | None:
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", text):
        return int(text)
    if re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", text):
        return float(text)
    return None


def _typed(text: str, value_type: str, schema: dict[str, Any] | None) -> tuple[Any, str | None]:
    """The value a flat line's text stands for under the entry's type, or a problem."""
    if value_type == "number":
        number = _number(text.strip())
        return (number, None) if number is not None else (None, "the value is not a number")
    if value_type == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true", None
        return None, "the value is not true or false"
    if value_type == "select":
        for option in (schema or {}).get("options") or []:
            if formats.leaf_text(option) == text:
                return option, None
        return text, None  # validation names the options
    if value_type == "json":
        try:
            return orjson.loads(text), None
        except orjson.JSONDecodeError:
            return None, "the value is not JSON text"
    return text, None


def _leaf(text: str, current: Any) -> Any:
    """A leaf of a json entry takes the JSON type of the leaf it replaces, else stays a string."""
    if isinstance(current, str) or current is _MISSING:
        return text
    if isinstance(current, bool):
        return text == "true" if text in ("true", "false") else text
    if isinstance(current, int | float):
        number = _number(text)
        return text if number is None else number
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


_MISSING: Any = object()


def _at(value: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    return value


def _put(target: dict[str, Any], path: list[str], leaf: Any) -> None:
    for name in path[:-1]:
        child = target.get(name)
        if not isinstance(child, dict):
            child = target[name] = {}
        target = child
    target[path[-1]] = leaf


def _resolver(
    kind: FlatFormat, current: dict[str, State]
) -> Callable[[str], tuple[str, list[str]] | str]:
    """Flat name to (entry key, field path), or a problem; unknown names are new keys."""
    if kind == "properties":
        by_name: dict[str, list[str]] = {key: [key] for key in current}
        separator, segment, new_field = ".", (lambda s: s), (lambda s: s)
    else:
        by_name = {}
        for key in current:
            by_name.setdefault(formats.env_segment(key), []).append(key)
        separator, segment, new_field = "__", formats.env_segment, str.lower

    def resolve(name: str) -> tuple[str, list[str]] | str:
        exact = by_name.get(name, [])
        if len(exact) > 1:
            return f"is ambiguous: it names the keys {', '.join(sorted(exact))}"
        if exact:
            return exact[0], []
        cuts = [m.start() for m in re.finditer(f"(?={re.escape(separator)})", name)]
        for cut in reversed(cuts):
            owners = [k for k in by_name.get(name[:cut], []) if current[k].value_type == "json"]
            rest = name[cut + len(separator) :]
            if len(owners) == 1 and rest:
                fields = formats.resolve_path(
                    rest, separator, current[owners[0]].value, segment, new_field
                )
                return owners[0], fields
        return name, []

    return resolve


def _entry_from_lines(
    state: State, lines: list[tuple[list[str], FlatLine]], merge: bool
) -> tuple[Any, str | None]:
    if state.value_type != "json":
        last = lines[-1][1]
        if state.is_secret and last.text == MASK:
            return state.value, None
        value, problem = _typed(last.text, state.value_type, state.validation_schema)
        return value, f"line {last.line}: {problem}" if problem else None
    keep = isinstance(state.value, dict) and merge
    built: Any = orjson.loads(orjson.dumps(state.value)) if keep else {}
    for path, line in lines:
        if not path:
            if state.is_secret and line.text == MASK:
                built = orjson.loads(orjson.dumps(state.value))
                continue
            built, problem = _typed(line.text, "json", None)
            if problem:
                return None, f"line {line.line}: {problem}"
            continue
        if not isinstance(built, dict):
            built = {}
        _put(built, path, _leaf(line.text, _at(state.value, path)))
    return built, None


def flat_builder(kind: FlatFormat, lines: list[FlatLine], *, merge: bool) -> Builder:
    def build(current: dict[str, State]) -> tuple[list[EntryDraft], dict[str, list[Problem]]]:
        resolve = _resolver(kind, current)
        problems: dict[str, list[Problem]] = {}
        grouped: dict[str, list[tuple[list[str], FlatLine]]] = {}
        for line in lines:
            found = resolve(line.name)
            if isinstance(found, str):
                problems.setdefault(line.name, []).append(
                    Problem("key", "name", f"line {line.line}: {line.name} {found}")
                )
                continue
            key, path = found
            grouped.setdefault(key, []).append((path, line))
        drafts = []
        for key, found_lines in grouped.items():
            state = current.get(key)
            if state is None:
                if not re.fullmatch(KEY_PATTERN, key):
                    problems.setdefault(key, []).append(
                        Problem(
                            "key",
                            "pattern",
                            f"line {found_lines[-1][1].line}: not a valid key (letters, digits, "
                            "'_', '.', '-', not starting with a digit)",
                        )
                    )
                    continue
                drafts.append(EntryDraft(key, found_lines[-1][1].text))
                continue
            value, problem = _entry_from_lines(state, found_lines, merge)
            if problem:
                problems.setdefault(key, []).append(Problem("value", "type", problem))
                continue
            drafts.append(replace(state, value=value).draft(key))
        return drafts, problems

    return build
