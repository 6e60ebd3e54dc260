"""Signing secrets and signatures, as the Standard Webhooks specification (1.0.0) defines them.

A secret is ``whsec_`` and the base64 of 32 random bytes. Each delivery carries ``webhook-id``
(the delivery's id, the same on every attempt), ``webhook-timestamp`` (seconds since the epoch,
when the attempt is sent) and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed
by the secret's bytes, of ``id.timestamp.body``; during a rotation one such signature per valid
secret, separated by spaces. These few lines are the whole of the scheme: the tests check them
with the ``standardwebhooks`` package, which no one here wrote.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secrets_: Sequence[str], delivery_id: uuid.UUID, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of one attempt, signed with every secret still valid."""
    message_id = f"msg_{delivery_id.hex}"
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, message_id, timestamp, body) for secret in secrets_
        ),
        "content-type": "application/json",
        "user-agent": "Konfig-Webhooks/1",
    }
