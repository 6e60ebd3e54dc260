"""One key's content on each side of a diff, and the diff between two sides.

History, rollbacks, documents and imports all compare states: a ``State`` is a key's value and
rules, read from a stored entry or a version, or wanted by a draft. A side is shown masked when
its value was secret or the key is secret now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import MASK
from konfig.configs.service import StoredValueCorrupt, read_value
from konfig.configs.types import Problem
from konfig.revisions.models import EntryVersion
from konfig.revisions.schemas import DiffRead
from konfig.revisions.writer import EntryDraft, WritePolicy, decrypt_value
from konfig.security.crypto import DecryptionError


@dataclass(frozen=True, slots=True)
class State:
    """One key's content on one side of a diff."""

    value: Any
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    version: int | None = None

    @classmethod
    def of_draft(cls, draft: EntryDraft, version: int | None = None) -> State:
        return cls(
            draft.value,
            draft.value_type,
            draft.validation_schema,
            draft.description,
            draft.is_secret,
            version,
        )

    def draft(self, key: str) -> EntryDraft:
        return EntryDraft(
            key,
            self.value,
            self.value_type,
            self.validation_schema,
            self.description,
            self.is_secret,
        )


def differing_fields(old: State, new: State) -> list[str]:
    """What differs, compared the way the writer decides whether a key changed."""
    fields = []
    if orjson.dumps(old.value) != orjson.dumps(new.value):
        fields.append("value")
    if old.value_type != new.value_type:
        fields.append("value_type")
    if (old.validation_schema or None) != (new.validation_schema or None):
        fields.append("validation_schema")
    if old.description != new.description:
        fields.append("description")
    if old.is_secret != new.is_secret:
        fields.append("is_secret")
    return fields


# One side of a diff, as EntryState's fields: diffs are validated once, whole (a 10,000-key
# document's diff built one model at a time cost a fifth of its write).
Shown = Callable[[str, State], dict[str, Any]]


def shown_as(*, reveal: bool, secret_now: set[str]) -> Shown:
    def show(key: str, state: State) -> dict[str, Any]:
        masked = not reveal and (state.is_secret or key in secret_now)
        return {
            "value": MASK if masked else state.value,
            "value_type": state.value_type,
            "validation_schema": state.validation_schema,
            "description": state.description,
            "is_secret": state.is_secret,
            "version": state.version,
        }

    return show


def secret_keys(
    old: Mapping[str, State], new: Mapping[str, State], secret_now: set[str]
) -> list[str]:
    """The keys of a diff whose values are secret: a reveal shows them, and is audited."""
    return [
        key
        for key in old.keys() | new.keys()
        if key in secret_now
        or (key in old and old[key].is_secret)
        or (key in new and new[key].is_secret)
    ]


def diff_states(
    old: Mapping[str, State],
    new: Mapping[str, State],
    *,
    from_revision: int,
    to_revision: int | None,
    show: Shown,
) -> DiffRead:
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None and after is not None:
            added.append({"key": key, "old": None, "new": show(key, after), "fields": ["created"]})
        elif after is None and before is not None:
            removed.append(
                {"key": key, "old": show(key, before), "new": None, "fields": ["deleted"]}
            )
        elif before is not None and after is not None:
            fields = differing_fields(before, after)
            if fields:
                changed.append(
                    {
                        "key": key,
                        "old": show(key, before),
                        "new": show(key, after),
                        "fields": fields,
                    }
                )
    return DiffRead.model_validate(
        {
            "from_revision": from_revision,
            "to_revision": to_revision,
            "added": added,
            "removed": removed,
            "changed": changed,
        }
    )


def open_version(policy: WritePolicy, version: EntryVersion) -> Any:
    if version.value_ciphertext is None:
        return None
    try:
        return decrypt_value(
            policy.keyring,
            version.tenant_id,
            version.namespace_id,
            version.key,
            version.value_ciphertext,
        )
    except DecryptionError as exc:
        raise StoredValueCorrupt(
            f"version {version.version} of {version.key} failed its integrity check",
            {"key": version.key, "version": version.version},
        ) from exc


def state_of_version(policy: WritePolicy, version: EntryVersion) -> State:
    return State(
        open_version(policy, version),
        version.value_type,
        version.validation_schema,
        version.description,
        version.is_secret,
        version.version,
    )


def state_of_entry(policy: WritePolicy, entry: ConfigEntry) -> State:
    return State(
        read_value(policy, entry),
        entry.value_type,
        entry.validation_schema,
        entry.description,
        entry.is_secret,
        entry.version,
    )


# What a write of many entries makes of the namespace's current states: the drafts to write,
# and the problems found on the way, by key.
Builder = Callable[[dict[str, State]], tuple[list[EntryDraft], dict[str, list[Problem]]]]
