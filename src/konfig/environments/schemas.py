"""What comparison, copy and search answer and accept."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from konfig.revisions.schemas import MAX_NUMBER

RowStatus = Literal["same", "different", "missing"]


class ComparedNamespace(BaseModel):
    id: uuid.UUID
    name: str
    revision: int


class ComparedCell(BaseModel):
    """One key in one environment."""

    present: bool
    value: Any = Field(None, description="The value; ``********`` for a secret, never revealed")
    value_type: str | None = None
    secret: bool = False
    fingerprint: str | None = Field(
        None,
        description="Secrets only: a keyed tag of the value, equal exactly when the values are "
        "equal, so 'same secret' shows without revealing it",
    )
    source: str | None = Field(
        None, description="Resolved only: the namespace the value comes from"
    )


class ComparedKey(BaseModel):
    key: str
    status: RowStatus = Field(
        description="same: equal everywhere; different: set everywhere, not equal; "
        "missing: absent from at least one environment"
    )
    cells: list[ComparedCell] = Field(description="One per namespace, in the order asked")


class ComparisonSummary(BaseModel):
    same: int
    different: int
    missing: int


class ComparisonRead(BaseModel):
    namespaces: list[ComparedNamespace]
    resolved: bool
    keys: list[ComparedKey]
    summary: ComparisonSummary


class CopyRequest(BaseModel):
    """Copy keys' values from one namespace to another as one revision."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=255, description="The namespace copied from")
    target: str = Field(min_length=1, max_length=255, description="The namespace written")
    keys: list[str] = Field(min_length=1, max_length=500, description="The keys to copy")
    message: str | None = Field(None, max_length=1000, description="Recorded with the revision")
    expected_revision: int | None = Field(
        None,
        ge=0,
        le=MAX_NUMBER,
        description="The target's revision the change was reviewed against: 412 if it moved",
    )


class SearchHit(BaseModel):
    namespace: str
    namespace_id: uuid.UUID
    key: str
    matched: list[Literal["key", "description", "value"]]
    description: str
    value: Any = Field(None, description="The value; ``********`` for a secret (never searched)")
    secret: bool
    link: str = Field(description="The entry's page in the UI")
    api: str = Field(description="The entry in the API")


class SearchRead(BaseModel):
    q: str
    items: list[SearchHit]
    total: int = Field(description="Every match, of which ``items`` holds the first ``limit``")
    namespaces: int = Field(description="How many namespaces hold a match")
