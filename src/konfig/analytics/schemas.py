"""What the analytics API answers: a namespace's clients, its traffic, its keys' reads, and a
token's use."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Period = Literal["day", "week"]


class ClientRead(BaseModel):
    instance: str | None = Field(description="X-Konfig-Instance, or None when the client sent none")
    address: str | None = Field(description="The caller's address, when it named no instance")
    actor: str = Field(description="The credentials it reads with (token:<id> or user:<id>)")
    sdk: str = Field(description="X-Konfig-SDK, as sent ('' when none)")
    revision: int = Field(description="The namespace revision of the state it holds")
    current: bool = Field(description="Holds the namespace's current resolved config")
    stale: bool = Field(
        description="Still on an older state KONFIG_ANALYTICS_STALE_SECONDS after a change"
    )
    behind_since: datetime | None = Field(description="When the first change it misses came")
    last_seen_at: datetime = Field(description="Its last read, 304, push or stream heartbeat")
    last_pushed_at: datetime | None = Field(description="When a change was last pushed to it")


class ClientsRead(BaseModel):
    namespace: str
    revision: int = Field(description="The namespace's current revision")
    changed_at: datetime | None = Field(description="When its resolved config last changed")
    instances: int = Field(description="Instances seen within the window")
    on_current: int = Field(description="Of those, holding the current state")
    stale: int = Field(description="Of those, stale")
    behind_since: datetime | None = Field(description="The earliest change a stale one misses")
    headline: str
    stale_clients: list[ClientRead]
    items: list[ClientRead]


class TrafficBucket(BaseModel):
    start: datetime
    reads: int = Field(description="Configs sent (200s, OFREP evaluations)")
    not_modified: int = Field(description="304s: the client already held the state")
    pushes: int = Field(description="Changes pushed to a long poll or an event stream")


class TrafficRead(BaseModel):
    period: Period
    bucket_seconds: int
    buckets: list[TrafficBucket]
    totals: TrafficBucket


class KeyReadRow(BaseModel):
    key: str
    last_read_at: datetime | None = Field(description="The last resolved read that delivered it")
    unread: bool = Field(description="No resolved read delivered it for the unread period")


class KeyReads(BaseModel):
    namespace: str
    unread_days: float
    items: list[KeyReadRow]


class UnreadKey(BaseModel):
    namespace: str
    key: str
    last_read_at: datetime | None = Field(description="None: no read delivered it since kept")


class UnreadKeys(BaseModel):
    unread_days: float
    items: list[UnreadKey]


class TokenNamespaceUse(BaseModel):
    namespace: str
    requests: int
    instances: int
    last_read_at: datetime | None


class TokenUsage(BaseModel):
    token_id: str
    last_used_at: datetime | None
    namespaces: list[TokenNamespaceUse]
    traffic: TrafficRead
