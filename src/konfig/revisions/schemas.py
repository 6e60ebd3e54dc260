from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from konfig.changes.schemas import ChangeRequestSummary
from konfig.configs.schemas import KEY_PATTERN, MASK
from konfig.configs.types import VALUE_TYPES

_MASKED = f"Secrets read as {MASK!r} unless revealed"

# Versions and revisions are 32-bit columns: a larger number names nothing, and is refused as
# input before it reaches the database (where PostgreSQL would fail on it).
MAX_NUMBER = 2**31 - 1

_ACTOR_EMAIL = (
    "The email of the user who made it, shown to users; null for an API token's change, a "
    "removed user's, or when an API token asks"
)


class EntryVersionRead(BaseModel):
    """One version of one key, as it was written."""

    key: str
    version: int
    revision: int = Field(description="The namespace revision that wrote this version")
    action: Literal["create", "update", "delete"]
    value: Any = Field(description=f"null for a deletion; {_MASKED}")
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    actor: str
    actor_email: str | None = Field(None, description=_ACTOR_EMAIL)
    created_at: datetime


class EntryRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_NUMBER, description="The version to bring back")
    message: str | None = Field(None, max_length=1000, description="Recorded with the revision")


class Change(BaseModel):
    key: str
    action: Literal["create", "update", "delete"]
    old_version: int | None = Field(description="null when the key did not exist before")
    new_version: int


class RevisionRead(BaseModel):
    revision: int
    actor: str
    actor_email: str | None = Field(None, description=_ACTOR_EMAIL)
    message: str | None
    keys: list[str] = Field(description="The keys this revision touched")
    changes: list[Change]
    created_at: datetime


class SnapshotEntry(BaseModel):
    key: str
    value: Any = Field(description=_MASKED)
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    version: int
    revision: int = Field(description="The namespace revision that wrote this version")
    updated_by: str
    updated_at: datetime


class SnapshotRead(BaseModel):
    """The whole namespace as it was at one revision."""

    namespace_id: uuid.UUID
    namespace: str
    revision: int
    actor: str | None = Field(description="Who made this revision (null for revision 0)")
    message: str | None
    created_at: datetime | None
    entries: list[SnapshotEntry]


class EntryState(BaseModel):
    """One side of a diff."""

    value: Any = Field(description=_MASKED)
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    version: int | None = Field(description="null for a state not written yet (dry run)")


class DiffItem(BaseModel):
    key: str
    old: EntryState | None
    new: EntryState | None
    fields: list[str] = Field(description="What differs: value, value_type, validation_schema, …")


class DiffRead(BaseModel):
    from_revision: int
    to_revision: int | None = Field(description="null when the new state is not written (dry run)")
    added: list[DiffItem]
    removed: list[DiffItem]
    changed: list[DiffItem]


class NamespaceRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision: int = Field(ge=0, le=MAX_NUMBER, description="The revision whose state to restore")
    message: str | None = Field(None, max_length=1000, description="Recorded with the revision")


class ChangeResult(BaseModel):
    """What a rollback, document or import did (or, in a dry run, would do)."""

    namespace_id: uuid.UUID
    revision: int = Field(description="The namespace's revision now")
    previous_revision: int
    committed: bool = Field(description="Whether a new revision was written")
    dry_run: bool
    diff: DiffRead
    change_request: ChangeRequestSummary | None = Field(
        None,
        description="The namespace is protected: the change went into this change request "
        "(answered with 202) and nothing was committed",
    )


class DocumentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY_PATTERN)
    value: Any
    value_type: str = Field("string", json_schema_extra={"enum": list(VALUE_TYPES)})
    validation_schema: dict[str, Any] | None = None
    description: str = Field("", max_length=1000)
    is_secret: bool = False


class Document(BaseModel):
    """Every entry of a namespace: the body of PUT …/document and of yaml/json export."""

    model_config = ConfigDict(extra="forbid")

    entries: list[DocumentEntry]
    message: str | None = Field(None, max_length=1000, description="Recorded with the revision")


class DocumentRead(BaseModel):
    """The namespace's entries in the shape PUT …/document takes."""

    entries: list[DocumentEntry]
