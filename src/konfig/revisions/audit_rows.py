"""The audit event a revision writes: each change's before and after as keyed fingerprints,
secrets masked; the first hundred changes listed, the rest counted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from konfig.audit import service as audit
from konfig.audit.context import AuditContext
from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace
from konfig.revisions.values import decrypt_value
from konfig.security.crypto import DecryptionError, Keyring

if TYPE_CHECKING:  # rows builds these events
    from konfig.revisions.rows import EntryDraft

_LISTED = 100  # a revision's audit summary lists this many changes, then counts the rest


def event_row(
    keyring: Keyring,
    *,
    namespace: Namespace,
    revision: int,
    actor: str,
    message: str | None,
    creates: Sequence[EntryDraft],
    updates: Sequence[EntryDraft],
    removals: Sequence[ConfigEntry],
    current: dict[str, ConfigEntry],
    now: datetime,
    context: AuditContext,
) -> dict[str, Any]:
    """The revision's audit event row: its one change by key, or a batch by count."""
    summary = _summary(keyring, revision, creates, updates, current, removals, message)
    only = summary["changes"][0] if summary["total"] == 1 else None
    return audit.event_row(
        action=_action(only),
        target_type="config",
        target=only["key"] if only else f"{summary['total']} keys",
        namespace=namespace.name,
        summary=summary,
        tenant_id=namespace.tenant_id,
        actor=actor,
        context=context,
    ) | {"created_at": now}


def _action(only: dict[str, Any] | None) -> str:
    """A revision's audit action: what its one change did (turning a secret into a plain value
    is ``config.unsecret``, making a value secret ``config.secret``), or ``config.batch``."""
    if only is None:
        return "config.batch"
    flag = only.get("secret")
    if flag is not None:
        return {"added": "config.secret", "removed": "config.unsecret"}[flag]
    return f"config.{only['action']}"


def _summary(
    keyring: Keyring,
    revision: int,
    creates: Sequence[EntryDraft],
    updates: Sequence[EntryDraft],
    current: dict[str, ConfigEntry],
    removals: Sequence[ConfigEntry],
    message: str | None,
) -> dict[str, Any]:
    """Before and after of each change, as keyed fingerprints; secrets masked."""
    changes: list[dict[str, Any]] = []
    for draft in creates[:_LISTED]:
        after = audit.shown_value(keyring, draft.value, secret=draft.is_secret)
        changes.append({"key": draft.key, "action": "create", "after": after})
    for draft in updates[: max(0, _LISTED - len(changes))]:
        old = current[draft.key]
        hide = old.is_secret or draft.is_secret
        before = audit.shown_value(keyring, readable_value(keyring, old), secret=hide)
        after = audit.shown_value(keyring, draft.value, secret=hide)
        change = {"key": draft.key, "action": "update", "before": before, "after": after}
        if old.is_secret != draft.is_secret:  # a security review looks for these
            change["secret"] = "added" if draft.is_secret else "removed"
        changes.append(change)
    for entry in removals[: max(0, _LISTED - len(changes))]:
        before = audit.shown_value(keyring, readable_value(keyring, entry), secret=entry.is_secret)
        changes.append({"key": entry.key, "action": "delete", "before": before})
    total = len(creates) + len(updates) + len(removals)
    summary: dict[str, Any] = {
        "revision": revision,
        "message": message,
        "changes": changes,
        "total": total,
    }
    unsecret = sorted(d.key for d in updates if current[d.key].is_secret and not d.is_secret)
    if unsecret:  # every key, even past the listed changes
        summary["unsecret"] = unsecret
    return summary


def readable_value(keyring: Keyring, entry: ConfigEntry) -> Any:
    """The entry's value, or a marker when it fails its integrity check: an unreadable old
    value must never block replacing it."""
    try:
        return decrypt_value(
            keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except DecryptionError:
        return "<unreadable>"
