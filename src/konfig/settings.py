"""Settings from the environment (prefix ``KONFIG_``; the original spec's bare names work too)."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse_many
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger("konfig.settings")


def _env(name: str, *legacy: str) -> AliasChoices:
    return AliasChoices(f"KONFIG_{name}", *legacy, name.lower())


class Settings(BaseSettings):
    """Everything Konfig reads from its environment, validated once."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    env: Literal["development", "production"] = Field("development", validation_alias=_env("ENV"))
    data_dir: Path = Field(Path("data"), validation_alias=_env("DATA_DIR"))
    database_url: str = Field("", validation_alias=_env("DATABASE_URL", "DATABASE_URL"))
    # The tables' owner, for migrations; the app serves as a role that owns nothing (PostgreSQL
    # row-level security, see docs/deploy.md). Empty: migrate with KONFIG_DATABASE_URL.
    migration_database_url: str = Field("", validation_alias=_env("MIGRATION_DATABASE_URL"))
    host: str = Field("127.0.0.1", validation_alias=_env("HOST"))
    # Where people reach Konfig (https://konfig.example.com), for the single sign-on callback
    # registered at providers; empty: the URL each request came in on.
    public_url: str = Field("", validation_alias=_env("PUBLIC_URL"))
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("PORT"))
    secret_key: str = Field("", validation_alias=_env("SECRET_KEY", "SECRET_KEY"))
    encryption_keys: str = Field(
        "", validation_alias=_env("ENCRYPTION_KEYS", "KONFIG_ENCRYPTION_KEY", "ENCRYPTION_KEY")
    )
    redis_url: str = Field("", validation_alias=_env("REDIS_URL", "REDIS_URL"))
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("CORS_ORIGINS")
    )
    redis_key_prefix: str = Field("konfig", min_length=1, validation_alias=_env("REDIS_KEY_PREFIX"))
    rate_limit_per_minute: int = Field(
        600, ge=1, validation_alias=_env("RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PER_MINUTE")
    )
    read_rate_limit_per_minute: int = Field(
        60_000, ge=1, validation_alias=_env("READ_RATE_LIMIT_PER_MINUTE")
    )
    # ``limits`` notation, several joined by ";": "10/minute;100/hour".
    login_rate_limit: str = Field("10/minute", validation_alias=_env("LOGIN_RATE_LIMIT"))
    login_address_rate_limit: str = Field(
        "30/minute", validation_alias=_env("LOGIN_ADDRESS_RATE_LIMIT")
    )
    log_format: Literal["json", "console"] | None = Field(None, validation_alias=_env("LOG_FORMAT"))
    shutdown_grace_seconds: float = Field(
        20, gt=0, le=3600, validation_alias=_env("SHUTDOWN_GRACE_SECONDS")
    )
    shutdown_drain_seconds: float | None = Field(
        None, ge=0, validation_alias=_env("SHUTDOWN_DRAIN_SECONDS")
    )
    access_token_minutes: int = Field(15, ge=1, validation_alias=_env("ACCESS_TOKEN_MINUTES"))
    refresh_token_days: int = Field(30, ge=1, validation_alias=_env("REFRESH_TOKEN_DAYS"))
    jwt_issuer: str = Field("konfig", validation_alias=_env("JWT_ISSUER"))
    jwt_audience: str = Field("konfig-api", validation_alias=_env("JWT_AUDIENCE"))
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))
    max_value_bytes: int = Field(64 * 1024, ge=16, validation_alias=_env("MAX_VALUE_BYTES"))
    max_keys_per_namespace: int = Field(
        10_000, ge=1, validation_alias=_env("MAX_KEYS_PER_NAMESPACE")
    )
    max_json_depth: int = Field(32, ge=1, validation_alias=_env("MAX_JSON_DEPTH"))
    argon2_time_cost: int = Field(3, ge=1, le=20, validation_alias=_env("ARGON2_TIME_COST"))
    argon2_memory_kib: int = Field(
        65536, ge=64, le=4 * 1024 * 1024, validation_alias=_env("ARGON2_MEMORY_KIB")
    )
    migrate_on_start: bool = Field(True, validation_alias=_env("MIGRATE_ON_START"))
    docs_enabled: bool | None = Field(None, validation_alias=_env("DOCS_ENABLED"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    forwarded_allow_ips: str = Field(
        "127.0.0.1", validation_alias=_env("FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS")
    )
    # Backups: after changes (0 = off), on a schedule (0 = off), and how many to keep per tenant.
    backup_debounce_seconds: float = Field(
        30.0, ge=0, validation_alias=_env("BACKUP_DEBOUNCE_SECONDS")
    )
    backup_interval: float = Field(86_400.0, ge=0, validation_alias=_env("BACKUP_INTERVAL"))
    backup_keep: int = Field(50, ge=1, validation_alias=_env("BACKUP_KEEP"))
    mirror_dir: Path | None = Field(None, validation_alias=_env("MIRROR_DIR"))
    # The read path (issue 5): caches, change notifications between replicas, watchers.
    notify_channel: str = Field(
        "konfig_changes",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias=_env("NOTIFY_CHANNEL"),
    )
    resolved_cache_entries: int = Field(
        10_000, ge=1, validation_alias=_env("RESOLVED_CACHE_ENTRIES")
    )
    cache_max_age_seconds: float = Field(300, gt=0, validation_alias=_env("CACHE_MAX_AGE_SECONDS"))
    token_usage_flush_seconds: float = Field(
        30, gt=0, validation_alias=_env("TOKEN_USAGE_FLUSH_SECONDS")
    )
    sse_heartbeat_seconds: float = Field(15, gt=0, validation_alias=_env("SSE_HEARTBEAT_SECONDS"))
    # Feature flags: a flag neither changed nor evaluated for this many days is listed as
    # stale (evaluation counts are written with the usage analytics, below).
    flag_stale_days: float = Field(30, gt=0, validation_alias=_env("FLAG_STALE_DAYS"))
    listener_check_seconds: float = Field(5, gt=0, validation_alias=_env("LISTENER_CHECK_SECONDS"))
    # With Redis between replicas: how often each compares its cache with the namespaces'
    # revisions in the database (the backstop for an announcement lost in a crash).
    revision_poll_seconds: float = Field(5, gt=0, validation_alias=_env("REVISION_POLL_SECONDS"))
    # Usage analytics (konfig.analytics): which instance holds which state and flag evaluation
    # counts, gathered in memory and written this often (the counts even when disabled); an
    # instance still on an older state this long after a change is stale; a key no resolved
    # read delivered for this many days is listed as unread.
    analytics_enabled: bool = Field(True, validation_alias=_env("ANALYTICS_ENABLED"))
    analytics_flush_seconds: float = Field(
        60, gt=0, validation_alias=_env("ANALYTICS_FLUSH_SECONDS")
    )
    analytics_stale_seconds: float = Field(
        300, gt=0, validation_alias=_env("ANALYTICS_STALE_SECONDS")
    )
    analytics_unread_days: float = Field(30, gt=0, validation_alias=_env("ANALYTICS_UNREAD_DAYS"))
    analytics_retention_days: float = Field(
        90, gt=0, validation_alias=_env("ANALYTICS_RETENTION_DAYS")
    )
    analytics_max_instances: int = Field(
        100_000, ge=1, validation_alias=_env("ANALYTICS_MAX_INSTANCES")
    )
    analytics_metric_namespaces: int = Field(
        20, ge=1, le=1000, validation_alias=_env("ANALYTICS_METRIC_NAMESPACES")
    )
    # Webhooks (konfig.webhooks): where they may be sent, how, and for how long.
    webhook_allow_http: bool = Field(False, validation_alias=_env("WEBHOOK_ALLOW_HTTP"))
    # CIDRs a webhook may reach although private, loopback, link-local or metadata addresses.
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("WEBHOOK_ALLOWED_NETWORKS")
    )
    webhook_timeout_seconds: float = Field(
        15, gt=0, le=300, validation_alias=_env("WEBHOOK_TIMEOUT_SECONDS")
    )
    # Seconds before each retry (Standard Webhooks' schedule); each gets up to 10 % of jitter.
    webhook_retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18e3, 36e3, 50.4e3, 72e3, 86.4e3],
        validation_alias=_env("WEBHOOK_RETRY_DELAYS"),
    )
    webhook_disable_after_seconds: float = Field(
        5 * 86400, gt=0, validation_alias=_env("WEBHOOK_DISABLE_AFTER_SECONDS")
    )
    webhook_retention_days: float = Field(30, gt=0, validation_alias=_env("WEBHOOK_RETENTION_DAYS"))
    webhook_poll_seconds: float = Field(1.0, gt=0, validation_alias=_env("WEBHOOK_POLL_SECONDS"))
    webhook_concurrency: int = Field(
        64, ge=1, le=1000, validation_alias=_env("WEBHOOK_CONCURRENCY")
    )
    webhooks_enabled: bool = Field(True, validation_alias=_env("WEBHOOKS_ENABLED"))

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("webhook_allowed_networks", "webhook_retry_delays", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network (CIDR, e.g. 10.0.0.0/8)") from exc
        return value

    @field_validator("webhook_retry_delays")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("give one or more delays in seconds, none negative")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @field_validator("login_rate_limit", "login_address_rate_limit")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '10/minute'") from exc
        return value

    @model_validator(mode="after")
    def _drain_within_grace(self) -> Settings:
        if self.drain_seconds >= self.shutdown_grace_seconds:
            raise ValueError(
                "KONFIG_SHUTDOWN_DRAIN_SECONDS must be shorter than KONFIG_SHUTDOWN_GRACE_SECONDS"
            )
        return self

    @field_validator("mirror_dir", mode="before")
    @classmethod
    def _no_empty_path(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def show_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else not self.is_production

    @property
    def resolved_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "console"

    @property
    def drain_seconds(self) -> float:
        """How long a SIGTERM keeps serving with ``/ready`` at 503 before closing the listener,
        so a load balancer stops routing here first (Kubernetes needs a few seconds)."""
        if self.shutdown_drain_seconds is not None:
            return self.shutdown_drain_seconds
        return min(5.0, self.shutdown_grace_seconds / 4) if self.is_production else 0.0

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file in the data directory."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'konfig.db'}"
        return async_database_url(url)

    @property
    def resolved_migration_url(self) -> str:
        """The URL migrations run with: the owner's when given, else the app's own."""
        if self.migration_database_url:
            return async_database_url(self.migration_database_url)
        return self.resolved_database_url


def async_database_url(url: str) -> str:
    """Map plain database URLs (``postgresql://``, ``mysql://``) to their async drivers."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("mysql://", "mysql+aiomysql://"),
        ("mariadb://", "mysql+aiomysql://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class ConfigurationError(RuntimeError):
    """The environment does not allow Konfig to start safely."""


_WEAK_SECRETS = {"", "changeme", "change-me", "secret", "your-secret-key", "dev", "development"}


def read_or_create_secret(path: Path, make: Any, what: str) -> str:
    """Read a generated development secret, creating it once (mode 0600) if missing."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = str(make())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log.warning("generated a development %s in %s; set it explicitly in production", what, path)
    return value


def secret_key(settings: Settings) -> str:
    """The JWT signing key: explicit in production, generated once in development."""
    if settings.secret_key:
        if settings.is_production and (
            settings.secret_key.lower() in _WEAK_SECRETS or len(settings.secret_key) < 32
        ):
            raise ConfigurationError(
                "KONFIG_SECRET_KEY is too weak for production: use at least 32 random characters"
            )
        return settings.secret_key
    if settings.is_production:
        raise ConfigurationError("KONFIG_SECRET_KEY must be set when KONFIG_ENV=production")
    return read_or_create_secret(
        settings.data_dir / "secret_key", lambda: secrets.token_urlsafe(48), "JWT secret key"
    )


def check_production(settings: Settings) -> None:
    """Refuse to start in production without explicit, strong keys."""
    if not settings.is_production:
        return
    if settings.log_format == "console":
        raise ConfigurationError(
            "KONFIG_LOG_FORMAT=console is for development: production logs JSON"
        )
    secret_key(settings)
    if settings.argon2_memory_kib < 19456 or settings.argon2_time_cost < 2:
        raise ConfigurationError(
            "KONFIG_ARGON2_MEMORY_KIB must be at least 19456 and KONFIG_ARGON2_TIME_COST "
            "at least 2 "
            "in production (OWASP's minimum for argon2id)"
        )
    if not settings.encryption_keys:
        raise ConfigurationError("KONFIG_ENCRYPTION_KEYS must be set when KONFIG_ENV=production")
    from konfig.security.crypto import KeyringError, parse_keys

    try:
        parse_keys(settings.encryption_keys)
    except KeyringError as exc:
        raise ConfigurationError(f"KONFIG_ENCRYPTION_KEYS: {exc}") from exc


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
