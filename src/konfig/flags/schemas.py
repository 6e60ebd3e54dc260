"""What the flags API answers: a namespace's flags with their use, and counts over time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class FlagRead(BaseModel):
    namespace: str
    key: str
    state: str = Field(description="ENABLED or DISABLED (the kill switch)")
    default_variant: str
    variants: dict[str, Any]
    targeting: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime = Field(description="When the flag last changed")
    last_evaluated_at: datetime | None = Field(
        description="Its last evaluation over OFREP (to the hour once written; None: never)"
    )
    evaluations: int = Field(description="Evaluations counted, all time")
    stale: bool = Field(description="Neither changed nor evaluated for KONFIG_FLAG_STALE_DAYS")


class FlagList(BaseModel):
    items: list[FlagRead]
    next_cursor: str | None = None


class HourCount(BaseModel):
    hour: datetime
    variant: str
    count: int


class FlagEvaluations(BaseModel):
    namespace: str
    key: str
    hours: list[HourCount] = Field(description="Evaluations per hour and variant, oldest first")
    totals: dict[str, int] = Field(description="Evaluations per variant over those hours")
    callers: dict[str, int] = Field(
        default_factory=dict,
        description="Evaluations per caller over those hours (token:<id> or user:<id>)",
    )
