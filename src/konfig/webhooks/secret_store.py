"""Signing secrets at rest: encrypted with the keyring, bound to their tenant and endpoint."""

from __future__ import annotations

import uuid
from datetime import datetime

from konfig.db.base import utcnow
from konfig.security.crypto import Keyring
from konfig.webhooks.models import WebhookEndpoint


def _aad(tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> bytes:
    return b"webhook-secret:" + tenant_id.bytes + endpoint_id.bytes


def seal(keyring: Keyring, endpoint: WebhookEndpoint, secret: str) -> bytes:
    return keyring.encrypt(secret.encode(), _aad(endpoint.tenant_id, endpoint.id))


def valid_secrets(
    keyring: Keyring, endpoint: WebhookEndpoint, now: datetime | None = None
) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one during
    the 24 hours after a rotation."""
    aad = _aad(endpoint.tenant_id, endpoint.id)
    found = [keyring.decrypt(endpoint.secret_ciphertext, aad).decode()]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_ciphertext and expires and expires > (now or utcnow()):
        found.append(keyring.decrypt(endpoint.previous_secret_ciphertext, aad).decode())
    return found
