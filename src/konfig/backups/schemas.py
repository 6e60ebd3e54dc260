from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from konfig.configs.schemas import MASK


class BackupRead(BaseModel):
    id: str = Field(description="The UTC timestamp naming the file, e.g. 20261123T041500.123Z")
    created_at: datetime
    trigger: str | None = Field(description="manual, auto (after changes) or scheduled")
    size_bytes: int
    namespace_count: int | None
    entry_count: int | None
    key_ids: list[str] = Field(description="Keyring keys its values and checksum use")
    valid: bool = Field(description="Its checksum holds under this instance's keyring")
    problem: str | None = Field(None, description="Why it cannot be restored, when not valid")


class BackupNamespaceSummary(BaseModel):
    name: str
    description: str
    includes: list[str]
    revision: int
    entry_count: int


class BackupDetail(BackupRead):
    namespaces: list[BackupNamespaceSummary]


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(False, description="Answer the diff and change nothing")
    namespaces: list[str] | None = Field(
        None,
        min_length=1,
        max_length=10_000,
        description="Restore only these namespaces (by name); all of the backup's when omitted",
    )
    reveal: bool = Field(False, description=f"Show secret values in the diff, not {MASK!r}")


class EntryView(BaseModel):
    value: Any = Field(description=f"Secrets read as {MASK!r} unless revealed")
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool


class KeyChange(BaseModel):
    key: str
    fields: list[str] = Field(description="What differs: value, value_type, validation_schema, …")
    before: EntryView | None = Field(description="Now (null for a key the restore adds)")
    after: EntryView | None = Field(description="From the backup (null for a key it removes)")


class FieldChange(BaseModel):
    before: Any
    after: Any


class NamespaceRestore(BaseModel):
    name: str
    namespace_id: uuid.UUID | None = Field(description="Null in a dry run that would create it")
    created: bool = Field(description="The namespace did not exist and is (or would be) created")
    revision: int | None = Field(description="The revision the restore wrote; null if none")
    description: FieldChange | None = None
    includes: FieldChange | None = None
    template: FieldChange | None = Field(
        None, description="The template it declares, now and from the backup, when they differ"
    )
    added: list[KeyChange]
    removed: list[KeyChange]
    changed: list[KeyChange]
    unchanged: int


class RestoreResult(BaseModel):
    backup_id: str
    dry_run: bool
    namespaces: list[NamespaceRestore]
