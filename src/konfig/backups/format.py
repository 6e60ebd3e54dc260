"""The backup file: one YAML document per tenant, values still encrypted, signed at the end.

Layout::

    # comment lines
    format: konfig-backup/1
    created_at: '2026-11-23T04:15:00.123000+00:00'
    ...
    namespaces: [...]          # each entry's value is the stored ciphertext, base64
    checksum:
      algorithm: hmac-sha256
      key_id: <keyring key the checksum key is derived from>
      digest: <hex HMAC-SHA256 of every byte above "checksum:">

The checksum is verified over the exact bytes before anything is parsed, so a truncated file, a
flipped byte or a file from an instance with another keyring is refused before its YAML is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from datetime import datetime
from typing import Any, Literal

import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from konfig.errors import ValidationFailed
from konfig.security.crypto import Keyring, parse_keys

FORMAT: Literal["konfig-backup/1"] = "konfig-backup/1"
_CHECKSUM_INFO = b"konfig/v1/backup-checksum"
_CHECKSUM_BLOCK = re.compile(
    rb"\nchecksum:\n  algorithm: hmac-sha256\n  key_id: ([A-Za-z0-9_-]{1,64})\n"
    rb"  digest: ([0-9a-f]{64})\n\Z"
)
_TAIL = 256  # the checksum block is well under this

try:  # the C loader and dumper are much faster on large tenants when libyaml is present
    from yaml import CSafeDumper as _Dumper
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Trigger = Literal["manual", "auto", "scheduled"]


class BackupRefused(ValidationFailed):
    """The file cannot be trusted or used; nothing was changed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupEntry(_Frozen):
    key: str
    value_type: str
    validation_schema: dict[str, Any] | None = None
    description: str = ""
    is_secret: bool = False
    version: int
    ciphertext: str = Field(description="The stored ciphertext, base64; its key id is inside")

    def ciphertext_bytes(self) -> bytes:
        return base64.b64decode(self.ciphertext, validate=True)


class BackupNamespace(_Frozen):
    id: uuid.UUID = Field(description="The namespace id its values are bound to")
    name: str
    description: str = ""
    includes: list[str] = Field(default_factory=list, description="Included namespaces, by name")
    revision: int
    entries: list[BackupEntry] = Field(default_factory=list)
    template: dict[str, Any] | None = Field(
        None,
        description="The template it declares for the environments under it (null: none); "
        "absent from backups taken before templates, whose restore leaves templates alone",
    )


class BackupTenant(_Frozen):
    id: uuid.UUID = Field(description="The tenant id its values are bound to")
    name: str


class BackupDocument(_Frozen):
    format: Literal["konfig-backup/1"] = FORMAT
    created_at: datetime
    trigger: Trigger
    konfig_version: str
    tenant: BackupTenant
    key_ids: list[str] = Field(description="Keyring keys the values are encrypted with")
    namespace_count: int
    entry_count: int
    namespaces: list[BackupNamespace]


class Verified(BaseModel):
    """A document whose checksum held, with the key that signed it."""

    document: BackupDocument
    checksum_key_id: str


def key_material(keyring: Keyring, key_id: str) -> bytes | None:
    """The raw key ``key_id`` of the keyring, if it holds it."""
    found = dict(keyring.keys).get(key_id)
    if found is None and keyring.path is not None and keyring.path.exists():
        # Another process may have rotated the key file since this keyring was loaded.
        found = dict(parse_keys(keyring.path.read_text())).get(key_id)
    return found


def _checksum_key(material: bytes) -> bytes:
    """A key for nothing but backup checksums, derived so it never doubles as an AES key."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CHECKSUM_INFO)
    return hkdf.derive(material)


def _digest(material: bytes, body: bytes) -> str:
    return hmac.new(_checksum_key(material), body, hashlib.sha256).hexdigest()


def render(document: BackupDocument, keyring: Keyring) -> tuple[bytes, str]:
    """The file's bytes (a comment, the document, the checksum block covering both) and the
    id of the key the checksum is derived from."""
    header = (
        f"# Konfig backup of tenant {document.tenant.name}. Values are still encrypted with the\n"
        "# instance keyring. The checksum at the end covers every byte above it: do not edit.\n"
    )
    dumped = yaml.dump(
        document.model_dump(mode="json"),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
    return sign((header + dumped).encode(), keyring)


def sign(body: bytes, keyring: Keyring) -> tuple[bytes, str]:
    """``body`` followed by the checksum block covering it, and the id of the key the checksum
    is derived from (the keyring's primary)."""
    key_id = keyring.primary
    material = key_material(keyring, key_id)
    if material is None:  # the primary key is always in the keyring
        raise RuntimeError("the primary encryption key is missing from the keyring")
    block = (
        f"checksum:\n  algorithm: hmac-sha256\n  key_id: {key_id}\n"
        f"  digest: {_digest(material, body)}\n"
    )
    return body + block.encode(), key_id


def _refuse(backup_id: str, reason: str, message: str, **details: Any) -> BackupRefused:
    return BackupRefused(
        f"backup {backup_id} is refused: {message}; nothing was changed",
        {"backup_id": backup_id, "reason": reason, **details},
    )


def verify(raw: bytes, keyring: Keyring, *, backup_id: str) -> Verified:
    """Check the checksum over the exact bytes, then parse; ``BackupRefused`` (422) otherwise."""
    tail_start = max(0, len(raw) - _TAIL)
    found = _CHECKSUM_BLOCK.search(raw, tail_start)
    if found is None:
        raise _refuse(
            backup_id,
            "truncated",
            "its checksum block is missing or damaged (a truncated or edited file?)",
        )
    body = raw[: found.start() + 1]
    key_id, digest = found.group(1).decode(), found.group(2).decode()
    material = key_material(keyring, key_id)
    if material is None:
        raise _refuse(
            backup_id,
            "unknown_key",
            f"it was signed with key {key_id!r}, which this instance's keyring does not hold "
            "(a backup from another instance, or a key that was removed)",
            key_id=key_id,
        )
    if not hmac.compare_digest(_digest(material, body), digest):
        raise _refuse(
            backup_id,
            "checksum_mismatch",
            "its checksum does not match its content (the file was altered or damaged)",
        )
    try:
        parsed = yaml.load(body, Loader=_Loader)
        document = BackupDocument.model_validate(parsed)
    except (yaml.YAMLError, ValidationError) as exc:
        raise _refuse(backup_id, "format", f"it is not a {FORMAT} document") from exc
    for namespace in document.namespaces:
        for entry in namespace.entries:
            try:
                entry.ciphertext_bytes()
            except (binascii.Error, ValueError) as exc:
                raise _refuse(
                    backup_id,
                    "format",
                    f"the value of {namespace.name}/{entry.key} is not valid base64",
                ) from exc
    return Verified(document=document, checksum_key_id=key_id)
