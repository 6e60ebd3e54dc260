from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from konfig.users.models import Role

Password = Field(min_length=8, max_length=256, description="At least 8 characters")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(Strict):
    email: EmailStr
    password: str = Password
    role: Role = Role.viewer
    full_name: str = Field("", max_length=200)


class UserUpdate(Strict):
    """What an admin may change about another user."""

    role: Role | None = None
    is_active: bool | None = None
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
    role: Role
    is_active: bool
    is_superuser: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
