"""Encryption at rest: AES-256-GCM with a keyring, bound to each value's tenant, namespace and key.

A ciphertext is ``0x01 | len(kid) | kid | nonce(12) | ciphertext+tag``. The associated data names
the row's tenant, namespace and key, so a ciphertext copied into another row fails to decrypt:
an error, never a wrong value.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("konfig.crypto")

_FORMAT = 1
_NONCE_BYTES = 12
KEYRING_FILE = "encryption_keys"


class DecryptionError(Exception):
    """A stored value failed its integrity check (moved, tampered with, or its key is unknown)."""


class KeyringError(ValueError):
    """The configured keys cannot be used."""


def associated_data(tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str) -> bytes:
    return _namespace_aad(tenant_id, namespace_id) + key.encode()


@functools.lru_cache(maxsize=4096)
def _namespace_aad(tenant_id: uuid.UUID, namespace_id: uuid.UUID) -> bytes:
    return f"konfig/v1/{tenant_id}/{namespace_id}/".encode()


def new_key_line() -> str:
    """A fresh key as ``kid:base64``; the id is time-ordered so rotations sort by age."""
    kid = f"k{int(time.time())}{secrets.token_hex(2)}"
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """Parse ``kid:base64key`` entries (comma or newline separated); the first is the primary.

    A single bare base64 key (the original spec's ``ENCRYPTION_KEY``) is accepted as ``k0``.
    """
    entries = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    keys: list[tuple[str, bytes]] = []
    for entry in entries:
        kid, sep, encoded = entry.partition(":")
        if not sep:
            kid, encoded = "k0", entry
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise KeyringError(f"encryption key {kid!r} is not valid base64") from exc
        if len(raw) != 32:
            raise KeyringError(f"encryption key {kid!r} must be 32 bytes (AES-256), got {len(raw)}")
        if (
            not kid.isascii()
            or not kid.replace("-", "").replace("_", "").isalnum()
            or len(kid) > 64
        ):
            raise KeyringError(f"encryption key id {kid!r} must be short and alphanumeric")
        if any(kid == known for known, _ in keys):
            raise KeyringError(f"encryption key id {kid!r} appears twice")
        keys.append((kid, raw))
    if not keys:
        raise KeyringError("no encryption keys configured")
    return keys


@dataclass
class Keyring:
    """The keys values are encrypted with; new values use the primary (first) key."""

    keys: list[tuple[str, bytes]]
    path: Path | None = None  # a keyring file is re-read when a value names an unknown key
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    _mtime: float = field(default=0.0, init=False, repr=False)
    _checked: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._ciphers = {kid: AESGCM(raw) for kid, raw in self.keys}
        if self.path is not None and self.path.exists():
            self._mtime = self.path.stat().st_mtime

    def _follow_file(self) -> None:
        """Pick up a key file rotated by `konfig keys rotate` (checked at most once a second)."""
        now = time.monotonic()
        if self.path is None or now - self._checked < 1.0:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            with self._lock:
                self.keys = parse_keys(self.path.read_text())
                self._ciphers = {kid: AESGCM(raw) for kid, raw in self.keys}
                self._mtime = mtime

    @property
    def primary(self) -> str:
        return self.keys[0][0]

    def fingerprint(self, plaintext: bytes) -> str:
        """A keyed, non-reversible tag of a value: equal values give equal tags under one key."""
        mac_key = hashlib.sha256(b"konfig/fingerprint/v1" + self.keys[0][1]).digest()
        return hmac.new(mac_key, plaintext, hashlib.sha256).hexdigest()[:16]

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        self._follow_file()
        kid = self.primary
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, plaintext, aad)
        encoded_kid = kid.encode()
        return bytes([_FORMAT, len(encoded_kid)]) + encoded_kid + nonce + sealed

    @staticmethod
    def key_id(ciphertext: bytes) -> str:
        if len(ciphertext) < 2 or ciphertext[0] != _FORMAT:
            raise DecryptionError("unknown ciphertext format")
        return ciphertext[2 : 2 + ciphertext[1]].decode(errors="replace")

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        kid = self.key_id(ciphertext)
        cipher = self._ciphers.get(kid) or self._reload_for(kid)
        start = 2 + ciphertext[1]
        nonce, sealed = ciphertext[start : start + _NONCE_BYTES], ciphertext[start + _NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, sealed, aad)
        except InvalidTag as exc:
            raise DecryptionError("stored value failed its integrity check") from exc

    def _reload_for(self, kid: str) -> AESGCM:
        """Another process rotated the file keyring: pick up its new key."""
        with self._lock:
            if kid not in self._ciphers and self.path is not None and self.path.exists():
                self.keys = parse_keys(self.path.read_text())
                self._ciphers = {k: AESGCM(raw) for k, raw in self.keys}
            cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(f"stored value names an unknown encryption key {kid!r}")
        return cipher


def write_keyring_file(path: Path, lines: list[str]) -> None:
    """Write the keyring atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def load_keyring(encryption_keys: str, data_dir: Path, *, production: bool) -> Keyring:
    """The keyring from ``KONFIG_ENCRYPTION_KEYS``, or (development) the generated key file."""
    if encryption_keys:
        return Keyring(parse_keys(encryption_keys))
    if production:
        raise KeyringError("KONFIG_ENCRYPTION_KEYS must be set when KONFIG_ENV=production")
    path = data_dir / KEYRING_FILE
    if not path.exists():
        write_keyring_file(path, [new_key_line()])
        log.warning(
            "generated a development encryption key in %s; "
            "set KONFIG_ENCRYPTION_KEYS in production",
            path,
        )
    return Keyring(parse_keys(path.read_text()), path=path)
