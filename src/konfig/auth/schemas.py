from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from konfig.users.schemas import UserRead

TENANT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=TENANT_NAME_PATTERN,
        description="The tenant's name: lowercase letters, digits, '_', '.', '-' (e.g. mycompany)",
    )
    email: EmailStr
    password: str = Field(min_length=8, max_length=256)
    full_name: str = Field("", max_length=200)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str


class RegisterResponse(BaseModel):
    tenant: TenantRead
    user: UserRead


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")


class Me(UserRead):
    tenant_name: str
