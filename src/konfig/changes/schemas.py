"""What the protection-policy and change-request endpoints take and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from konfig.tokens.scopes import check_pattern

Enforcement = Literal["hard", "soft"]
Status = Literal["draft", "open", "approved", "rejected", "merged", "closed"]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
# Statuses in which a request still waits for something (a submission, a review, the merge).
PENDING = ("draft", "open", "approved")


class Approver(BaseModel):
    """Who may approve: people holding ``role`` (or above) on the namespace, or members of
    ``group``; exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["editor", "admin", "owner"] | None = None
    group: str | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> Approver:
        if (self.role is None) == (self.group is None):
            raise ValueError('an approver is {"role": ...} or {"group": ...}, exactly one')
        return self


def _pattern(value: str) -> str:
    return check_pattern(value)


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespaces: str = Field(description="A namespace pattern, as grants write them: */production")
    approvals_required: int = Field(1, ge=1, le=10)
    approvers: list[Approver] = Field(
        default_factory=list,
        max_length=20,
        description="Roles or groups that may approve; empty: whoever may edit the namespace",
    )
    allow_self_approval: bool = False
    enforcement: Enforcement = Field(
        "hard", description="hard: no way round; soft: an admin may bypass with a reason"
    )

    _check = field_validator("namespaces")(_pattern)


class PolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespaces: str | None = None
    approvals_required: int | None = Field(None, ge=1, le=10)
    approvers: list[Approver] | None = Field(None, max_length=20)
    allow_self_approval: bool | None = None
    enforcement: Enforcement | None = None

    @field_validator("namespaces")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return None if value is None else check_pattern(value)


class PolicyRead(BaseModel):
    id: uuid.UUID
    namespaces: str
    approvals_required: int
    approvers: list[Approver]
    allow_self_approval: bool
    enforcement: Enforcement
    created_by: str
    created_at: datetime
    updated_at: datetime


class EntryState(BaseModel):
    """One side of a key's change (a secret's value is masked unless revealed)."""

    value: Any
    value_type: str
    validation_schema: dict[str, Any] | None = None
    description: str = ""
    is_secret: bool = False


class KeyChange(BaseModel):
    key: str
    action: Literal["create", "update", "delete"]
    base_version: int | None = Field(description="The key's version the change was based on")
    current_version: int | None = Field(description="The key's version now")
    conflict: bool = Field(description="The key changed in the namespace since the proposal")
    before: EntryState | None
    after: EntryState | None


class EventRead(BaseModel):
    actor: str
    actor_name: str | None
    kind: str
    body: str
    created_at: datetime


class ChangeRequestSummary(BaseModel):
    """A change request as lists show it, and as a write to a protected namespace answers
    (202 Accepted)."""

    id: uuid.UUID
    namespace_id: uuid.UUID
    namespace: str
    status: Status
    title: str
    author: str
    author_name: str | None
    keys: list[str]
    approvals: int
    approvals_required: int
    base_revision: int
    merged_revision: int | None
    created_at: datetime
    updated_at: datetime


class ChangeRequestRead(ChangeRequestSummary):
    changes: list[KeyChange]
    events: list[EventRead]
    approved_by: list[str]
    conflicts: list[str] = Field(description="Keys changed in the namespace since the proposal")
    may_approve: bool
    may_merge: bool
    enforcement: Enforcement | None


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=5000)


class ReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(None, max_length=5000)


class SubmitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=500)
