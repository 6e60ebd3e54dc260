"""Password hashing: argon2id for new hashes; bcrypt hashes are verified and then upgraded."""

from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

_COST = {"time_cost": 3, "memory_cost": 65536}


def configure(*, time_cost: int, memory_kib: int) -> None:
    """Set the argon2id cost of new hashes; stored hashes of another cost are upgraded at login."""
    if (_COST["time_cost"], _COST["memory_cost"]) != (time_cost, memory_kib):
        _COST.update(time_cost=time_cost, memory_cost=memory_kib)
        _hasher.cache_clear()
        _dummy_hash.cache_clear()


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash(
        (
            Argon2Hasher(time_cost=_COST["time_cost"], memory_cost=_COST["memory_cost"]),
            BcryptHasher(),
        )
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Whether the password matches, and a new hash when the stored one should be upgraded."""
    return _hasher().verify_and_update(password, password_hash)


@lru_cache
def _dummy_hash() -> str:
    return hash_password("konfig-timing-equaliser")


def burn_verification(password: str) -> None:
    """Spend the time of a real check, so an unknown email answers as slowly as a wrong password."""
    _hasher().verify(password, _dummy_hash())
