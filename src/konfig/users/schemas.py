from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from konfig.tokens.scopes import PATTERN_RULES, check_pattern
from konfig.users.grants import EVERYWHERE, Grant, parse_grants
from konfig.users.models import Role

Password = Field(min_length=8, max_length=256, description="At least 8 characters")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrantSpec(Strict):
    """A role on the namespaces a pattern matches."""

    role: Role
    namespaces: str = Field(description=f"A pattern: {PATTERN_RULES}", examples=["payments/**"])

    @field_validator("namespaces")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        return check_pattern(value)

    @model_validator(mode="after")
    def _owner_everywhere(self) -> GrantSpec:
        if self.role == Role.owner and self.namespaces != EVERYWHERE:
            raise ValueError("owner is a role on the whole tenant: grant it on '**' only")
        return self

    def grant(self) -> Grant:
        return Grant(self.role, self.namespaces)


GRANTS_HELP = "The user's access: the union of these grants"


class UserCreate(Strict):
    email: EmailStr
    password: str = Password
    role: Role | None = Field(None, description="Shorthand for grants [{role, namespaces: '**'}]")
    grants: list[GrantSpec] | None = Field(None, max_length=64, description=GRANTS_HELP)
    full_name: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _role_or_grants(self) -> UserCreate:
        if self.role is not None and self.grants is not None:
            raise ValueError("give either role or grants, not both")
        return self

    def initial_grants(self) -> list[Grant]:
        if self.grants is not None:
            return [g.grant() for g in self.grants]
        return [Grant(self.role or Role.viewer, EVERYWHERE)]


class GrantsUpdate(Strict):
    """A user's grants, replaced whole."""

    grants: list[GrantSpec] = Field(max_length=64, description=GRANTS_HELP)


class UserUpdate(Strict):
    """What an admin may change about another user."""

    role: Role | None = None
    is_active: StrictBool | None = None  # true or false: never 0, 1 or "yes"
    full_name: str | None = Field(None, max_length=200)


class MeUpdate(Strict):
    """What a user may change about themselves; a new password needs the current one."""

    email: EmailStr | None = None
    full_name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, min_length=8, max_length=256)
    current_password: str | None = Field(None, max_length=256)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    full_name: str
    role: Role = Field(description="The tenant role: the highest granted on '**'")
    grants: list[GrantSpec] = Field(description="Their own grants")
    groups: list[str] = Field(default_factory=list, description="The groups they belong to")
    group_grants: list[GrantSpec] = Field(
        default_factory=list, description="What their groups grant them besides"
    )
    is_active: bool
    is_superuser: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None

    @field_validator("grants", "group_grants", mode="before")
    @classmethod
    def _stored(cls, value: Any) -> Any:
        return [g.as_dict() for g in parse_grants(value)]
