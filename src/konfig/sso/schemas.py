"""What ``GET|PUT /api/v1/sso`` take and answer. The client secret goes in, never out."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from konfig.users.models import Role
from konfig.users.schemas import GrantSpec

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_owner(grants: list[GrantSpec]) -> list[GrantSpec]:
    if any(g.role == Role.owner for g in grants):
        raise ValueError("owner cannot be granted through the provider: owners are local")
    return grants


class MappingRule(Strict):
    """People whose ``claim`` holds ``value`` (or lists it) get ``grants``."""

    claim: str = Field("groups", min_length=1, max_length=100, examples=["groups"])
    value: str = Field(min_length=1, max_length=200, examples=["payments-devs"])
    grants: list[GrantSpec] = Field(min_length=1, max_length=32)

    _owner = field_validator("grants")(_no_owner)


class SsoSettings(Strict):
    """A tenant's OpenID provider and what its people's claims grant them."""

    issuer: str = Field(
        min_length=1,
        max_length=500,
        description="The provider's issuer URL (https; http only on this machine's loopback)",
        examples=["https://login.example.com/realms/acme"],
    )
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="Required the first time; left out, the stored one is kept. Never answered.",
    )
    display_name: str = Field("", max_length=100, description="Shown as 'Sign in with …'")
    allowed_domains: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Email domains that may sign in",
        examples=[["acme.com"]],
    )
    role_mapping: list[MappingRule] = Field(default_factory=list, max_length=100)
    default_grants: list[GrantSpec] = Field(
        default_factory=list, max_length=32, description="Given to everyone who signs in"
    )
    group_claim: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="A claim (e.g. groups) whose values that name Konfig groups make the "
        "person's groups, synced at every sign-in",
    )
    strict: StrictBool = Field(
        False, description="Refuse sign-ins that no mapping rule (or synced group) matches"
    )
    password_login: StrictBool = Field(
        True, description="Whether password sign-in stays open (owners may always use it)"
    )

    _owner = field_validator("default_grants")(_no_owner)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if not (parts.scheme == "https" or loopback) or not parts.hostname:
            raise ValueError("must be an https URL (http only for 127.0.0.1 or localhost)")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value.rstrip("/")

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        domains = [d.strip().lower() for d in value]
        bad = [d for d in domains if not _DOMAIN.fullmatch(d)]
        if bad:
            raise ValueError(f"not an email domain: {bad[0]!r} (e.g. acme.com)")
        return list(dict.fromkeys(domains))

    @model_validator(mode="after")
    def _strict_needs_rules(self) -> SsoSettings:
        if self.strict and not self.role_mapping:
            raise ValueError("strict mode refuses every sign-in without a role_mapping rule")
        return self


class SsoRead(BaseModel):
    issuer: str
    client_id: str
    client_secret_set: bool = Field(description="The secret itself is never answered")
    display_name: str
    allowed_domains: list[str]
    role_mapping: list[MappingRule]
    default_grants: list[GrantSpec]
    group_claim: str | None
    strict: bool
    password_login: bool
    login_url: str = Field(description="Where people of this tenant start signing in")
    redirect_uri: str = Field(description="The callback to register at the provider")
