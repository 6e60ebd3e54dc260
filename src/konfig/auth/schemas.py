from __future__ import annotations

import re
import uuid

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from konfig.users.schemas import UserRead

TENANT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
TENANT_NAME_RULES = (
    "1 to 63 lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, "
    "e.g. mycompany"
)


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The rule in the OpenAPI document; ``_valid_name`` enforces it with a message that explains it.
    name: str = Field(
        description=f"The tenant's name: {TENANT_NAME_RULES}",
        json_schema_extra={"pattern": TENANT_NAME_PATTERN},
    )
    email: EmailStr
    password: str = Field(min_length=8, max_length=256)
    full_name: str = Field("", max_length=200)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.fullmatch(TENANT_NAME_PATTERN, value):
            raise ValueError(f"{value[:70]!r} is not a tenant name: use {TENANT_NAME_RULES}")
        return value


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
