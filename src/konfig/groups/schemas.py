from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from konfig.users.models import Role
from konfig.users.schemas import GrantSpec

GROUP_NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_owner(grants: list[GrantSpec]) -> list[GrantSpec]:
    if any(g.role == Role.owner for g in grants):
        raise ValueError("owner is granted to people, never through a group")
    return grants


class GroupCreate(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=GROUP_NAME, examples=["payments-devs"])
    description: str = Field("", max_length=500)
    grants: list[GrantSpec] = Field(default_factory=list, max_length=64)

    _owner = field_validator("grants")(_no_owner)


class GroupGrants(Strict):
    grants: list[GrantSpec] = Field(max_length=64)

    _owner = field_validator("grants")(_no_owner)


class Memberships(Strict):
    groups: list[str] = Field(max_length=64, description="Group names, replaced whole")


class GroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    grants: list[GrantSpec]
    members: list[str] = Field(default_factory=list, description="Members' emails")
    created_at: datetime
    updated_at: datetime
