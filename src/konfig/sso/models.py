"""A tenant's OpenID provider, and the sign-ins under way with it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, IdMixin, Json, TimestampMixin, utcnow


class SsoConfig(IdMixin, TimestampMixin, Base):
    """One per tenant: where its people sign in and what their claims grant them."""

    __tablename__ = "sso_configs"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), unique=True, index=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    # AES-GCM with the keyring, bound to the tenant (konfig.sso.service.secret_aad).
    client_secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    allowed_domains: Mapped[list[Any]] = mapped_column(Json, default=list)
    # [{"claim": "groups", "value": "payments-devs", "grants": [{role, namespaces}]}, ...]
    role_mapping: Mapped[list[Any]] = mapped_column(Json, default=list)
    default_grants: Mapped[list[Any]] = mapped_column(Json, default=list)
    # A claim whose values name Konfig groups: the person's groups, synced at every sign-in.
    group_claim: Mapped[str | None] = mapped_column(String(100), default=None)
    strict: Mapped[bool] = mapped_column(default=False)
    password_login: Mapped[bool] = mapped_column(default=True)


class SsoFlow(IdMixin, Base):
    """A sign-in sent to the provider and not yet back: spent by the first callback that
    names its ``state``, so a replayed callback finds it spent."""

    __tablename__ = "sso_flows"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_page: Mapped[str] = mapped_column(String(500), default="/ui")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    spent_at: Mapped[datetime | None] = mapped_column(default=None)
