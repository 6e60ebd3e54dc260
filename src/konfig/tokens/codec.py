"""The API token format: ``kfg_`` + 43 base62 characters (256 random bits) + a 6-character
CRC32 checksum of them, so secret scanners can spot a leaked token and tell a typo from a token.

Only the SHA-256 of a token is stored. A token carries 256 random bits, so a fast hash is as good
as a slow one here (nothing to brute-force) and keeps the lookup on the hot path cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

PREFIX = "kfg_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
RANDOM_CHARS = 43  # 62**43 > 2**256: 32 random bytes always fit
CHECKSUM_CHARS = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS


def base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    return base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_CHARS)


def generate() -> str:
    """A new token secret; show it once, store only ``token_hash(secret)``."""
    random_part = base62(int.from_bytes(secrets.token_bytes(32), "big"), RANDOM_CHARS)
    return PREFIX + random_part + checksum(random_part)


def well_formed(secret: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about validity)."""
    if len(secret) != TOKEN_LENGTH or not secret.startswith(PREFIX):
        return False
    body = secret[len(PREFIX) :]
    if any(c not in _INDEX for c in body):
        return False
    random_part, check = body[:RANDOM_CHARS], body[RANDOM_CHARS:]
    return secrets.compare_digest(checksum(random_part), check)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def hint(secret: str) -> str:
    """What listings show of a token: enough to recognise it, far too little to use it."""
    return secret[: len(PREFIX) + 4] + "..." + secret[-4:]
