"""JWT access and refresh tokens (HS256 only, every claim required and checked)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

TokenType = Literal["access", "refresh"]
_ALGORITHM = "HS256"
_REQUIRED = ["sub", "tid", "role", "type", "iat", "exp", "jti", "iss", "aud", "sid"]


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    type: TokenType
    session_id: uuid.UUID
    jti: str
    expires_at: datetime


class InvalidToken(Exception):
    """The token is malformed, forged, expired, of the wrong type or for another audience."""


@dataclass(frozen=True, slots=True)
class TokenSigner:
    key: str
    issuer: str
    audience: str

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: str,
        type: TokenType,
        session_id: uuid.UUID,
        lifetime: timedelta,
    ) -> tuple[str, Claims]:
        now = datetime.now(UTC)
        jti = secrets.token_urlsafe(24)
        expires_at = now + lifetime
        payload = {
            "sub": str(user_id),
            "tid": str(tenant_id),
            "role": role,
            "type": type,
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": jti,
            "iss": self.issuer,
            "aud": self.audience,
        }
        token = jwt.encode(payload, self.key, algorithm=_ALGORITHM)
        claims = Claims(user_id, tenant_id, role, type, session_id, jti, expires_at)
        return token, claims

    def verify(self, token: str, *, expected_type: TokenType) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self.key,
                algorithms=[_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED},
            )
            claims = Claims(
                user_id=uuid.UUID(payload["sub"]),
                tenant_id=uuid.UUID(payload["tid"]),
                role=str(payload["role"]),
                type=payload["type"],
                session_id=uuid.UUID(payload["sid"]),
                jti=str(payload["jti"]),
                expires_at=datetime.fromtimestamp(payload["exp"], tz=UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(str(exc)) from exc
        if claims.type != expected_type:
            raise InvalidToken(f"expected a {expected_type} token, got a {claims.type} token")
        return claims
