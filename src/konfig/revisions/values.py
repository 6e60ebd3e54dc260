"""An entry's value at rest: JSON, encrypted with the keyring, bound by its associated data to
its tenant, namespace and key (a ciphertext copied to another entry does not open)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from konfig.security.crypto import Keyring, associated_data


def encrypt_value(
    keyring: Keyring, tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str, value: Any
) -> bytes:
    return keyring.encrypt(orjson.dumps(value), associated_data(tenant_id, namespace_id, key))


def decrypt_value(
    keyring: Keyring, tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str, ciphertext: bytes
) -> Any:
    return orjson.loads(keyring.decrypt(ciphertext, associated_data(tenant_id, namespace_id, key)))
