from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from konfig.tokens.scopes import PATTERN_RULES, check_pattern

EventType = Literal[
    "config.changed",
    "flag.changed",
    "namespace.created",
    "namespace.deleted",
    "token.revoked",
    "backup.failed",
    "change_request.opened",
    "change_request.approved",
    "change_request.rejected",
    "change_request.merged",
    "change_request.bypassed",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _unique(value: list[EventType]) -> list[EventType]:
    if len(set(value)) != len(value):
        raise ValueError("an event type is listed twice")
    return value


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=2048, examples=["https://ci.example.com/hooks/konfig"]
    )
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    namespaces: str = Field(
        "**", description=f"Which namespaces: {PATTERN_RULES}", examples=["payments/**"]
    )
    description: str = Field("", max_length=1000)
    enabled: bool = True

    _events = field_validator("events")(_unique)
    _pattern = field_validator("namespaces")(check_pattern)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=2048)
    events: list[EventType] | None = Field(None, min_length=1, max_length=len(EVENT_TYPES))
    namespaces: str | None = Field(None, description=f"Which namespaces: {PATTERN_RULES}")
    description: str | None = Field(None, max_length=1000)
    enabled: bool | None = Field(None, description="Re-enabling also clears why it was disabled")

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[EventType] | None) -> list[EventType] | None:
        return None if value is None else _unique(value)

    @field_validator("namespaces")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else check_pattern(value)


class WebhookRead(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    enabled: bool
    events: list[str]
    namespaces: str
    disabled_reason: str | None = Field(description="Why Konfig disabled it (410 Gone, failing)")
    failing_since: datetime | None = Field(description="Every attempt since then has failed")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries are signed with the previous secret too"
    )
    created_at: datetime
    updated_at: datetime
    created_by: str


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret (whsec_…): shown this once, never again")


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret: shown this once, never again")
    previous_secret_expires_at: datetime


class AttemptRead(BaseModel):
    attempted_at: datetime
    outcome: Literal["succeeded", "failed"]
    status_code: int | None
    duration_ms: int
    response: str = Field(description="The start of the answer's body, at most 1 KB")
    error: str | None


class DeliveryRead(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    message_id: str = Field(description="The webhook-id header: the same on every attempt")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]
    log: list[AttemptRead] = Field(description="Every attempt, oldest first")


class DeliveryQueued(BaseModel):
    id: uuid.UUID
    message_id: str
    status: DeliveryStatus
