from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from konfig.tokens.scopes import PATTERN_RULES, Permission, check_pattern


class ServiceAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$", examples=["billing-worker"]
    )
    description: str = Field("", max_length=1000)


class ServiceAccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    created_at: datetime
    created_by: str


class ScopeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespaces: str = Field(description=f"A pattern: {PATTERN_RULES}", examples=["payments/*"])
    permissions: list[Permission] = Field(
        min_length=1,
        max_length=3,
        examples=[["read"], ["read", "secrets"]],
        description="read: entries and resolved configs, secrets masked; secrets (with read): "
        "secret values decrypted; write: change entries",
    )

    @field_validator("namespaces")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        return check_pattern(value)

    @field_validator("permissions")
    @classmethod
    def _unique(cls, value: list[Permission]) -> list[Permission]:
        if len(set(value)) != len(value):
            raise ValueError("a permission is listed twice")
        if "secrets" in value and "read" not in value:
            raise ValueError("secrets: give read too (secrets decrypts what read reads)")
        return value


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["payments-production-reader"])
    service_account_id: uuid.UUID | None = Field(
        None, description="The service account that owns the token (admins); omitted: yourself"
    )
    scopes: list[ScopeSpec] = Field(min_length=1, max_length=32)
    expires_at: datetime | None = Field(None, description="When the token stops working")
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Or: days from now")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2030-01-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenCreate:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        return self


class TokenRead(BaseModel):
    id: uuid.UUID
    name: str
    hint: str = Field(description="The token's first and last characters, to recognise it")
    owner: Literal["service_account", "user"]
    service_account_id: uuid.UUID | None
    user_id: uuid.UUID | None
    scopes: list[ScopeSpec]
    status: Literal["active", "expired", "revoked"]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by: str


class TokenCreated(TokenRead):
    token: str = Field(description="The secret: shown this once, never again")
