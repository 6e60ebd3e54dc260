"""The OpenID Connect relying party: Authlib builds the authorization request (PKCE S256,
``state``, ``nonce``) and exchanges the code; joserfc checks the ID token's signature against
the provider's JWKS (fetched again once when a token names a key it does not know: the
provider rotated its keys) and its claims (issuer, audience, expiry, nonce).

Discovery documents and key sets are kept per issuer for ``ttl`` seconds.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import authlib.deprecate  # sets its warnings filter first: the one below then takes precedence
import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

with warnings.catch_warnings():
    # Authlib asks for its httpx2 fork and falls back to httpx, which Konfig already uses.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
SCOPE = "openid email profile"
_TIMEOUT = httpx.Timeout(10.0)


class ProviderError(Exception):
    """The provider cannot be used, or what it answered cannot be trusted; ``reason`` is the
    short word the audit log keeps."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message, self.reason = message, reason


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Client:
    """A tenant's client at its provider."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class Start:
    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(slots=True)
class Providers:
    """Providers' metadata and keys, per issuer, for the app's life."""

    ttl: float = 300.0
    transport: httpx.AsyncBaseTransport | None = None
    _metadata: dict[str, tuple[float, Metadata]] = field(default_factory=dict)
    _keys: dict[str, tuple[float, KeySet]] = field(default_factory=dict)

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=_TIMEOUT, transport=self.transport)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(
                f"the provider's {what} could not be read from {url}", "provider_unreachable"
            ) from exc
        if not isinstance(body, dict):
            raise ProviderError(f"the provider's {what} is not a JSON object", "provider_invalid")
        return body

    async def metadata(self, issuer: str) -> Metadata:
        """The issuer's discovery document; its ``issuer`` must be exactly the one configured."""
        cached = self._metadata.get(issuer)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        document = await self._get_json(
            f"{issuer}/.well-known/openid-configuration", "discovery document"
        )
        if document.get("issuer") != issuer:
            raise ProviderError(
                f"the provider calls itself {document.get('issuer')!r}, not {issuer!r}: "
                "check the issuer URL",
                "issuer_mismatch",
            )
        try:
            found = Metadata(
                issuer=issuer,
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
            )
        except KeyError as exc:
            raise ProviderError(
                f"the provider's discovery document lacks {exc.args[0]}", "provider_invalid"
            ) from exc
        self._metadata[issuer] = (time.monotonic() + self.ttl, found)
        return found

    async def keys(self, metadata: Metadata, *, fresh: bool = False) -> KeySet:
        cached = self._keys.get(metadata.issuer)
        if not fresh and cached is not None and cached[0] > time.monotonic():
            return cached[1]
        document = await self._get_json(metadata.jwks_uri, "key set")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                "the provider's key set cannot be read", "provider_invalid"
            ) from exc
        self._keys[metadata.issuer] = (time.monotonic() + self.ttl, keys)
        return keys

    async def start(self, client: Client) -> Start:
        """Where to send the browser: the authorization request, with its secrets to keep."""
        metadata = await self.metadata(client.issuer)
        state, nonce, verifier = generate_token(43), generate_token(32), generate_token(64)
        oauth = self._oauth(client)
        url, _ = oauth.create_authorization_url(
            metadata.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
        )
        await oauth.aclose()
        return Start(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def _oauth(self, client: Client) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=client.client_id,
            client_secret=client.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method's name
            scope=SCOPE,
            redirect_uri=client.redirect_uri,
            code_challenge_method="S256",
            timeout=_TIMEOUT,
            transport=self.transport,
        )

    async def finish(
        self, client: Client, *, code: str, code_verifier: str, nonce: str
    ) -> dict[str, Any]:
        """Exchange the code and return the ID token's claims, once every check has passed."""
        metadata = await self.metadata(client.issuer)
        try:
            async with self._oauth(client) as oauth:
                token = await oauth.fetch_token(
                    metadata.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except (AuthlibBaseError, httpx.HTTPError, ValueError) as exc:
            raise ProviderError(
                "the provider refused the sign-in code (expired, or used already)",
                "code_refused",
            ) from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError("the provider sent no ID token", "no_id_token")
        return await self.claims(metadata, client, id_token, nonce=nonce)

    async def claims(
        self, metadata: Metadata, client: Client, id_token: str, *, nonce: str
    ) -> dict[str, Any]:
        try:
            decoded = jwt.decode(id_token, await self.keys(metadata), algorithms=ALGORITHMS)
        except (JoseError, ValueError):
            # A key we do not know yet (rotated at the provider) earns one fresh look.
            try:
                keys = await self.keys(metadata, fresh=True)
                decoded = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except (JoseError, ValueError) as exc:
                raise ProviderError(
                    "the ID token's signature does not verify with the provider's keys",
                    "bad_signature",
                ) from exc
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": metadata.issuer},
            aud={"essential": True, "value": client.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", "")
            reason = {"nonce": "nonce_mismatch", "iss": "issuer_mismatch", "exp": "expired"}.get(
                claim, "bad_claims"
            )
            raise ProviderError(f"the ID token was refused: {exc}", reason) from exc
        return dict(decoded.claims)
