"""Settings: prefixed and original names, generated development keys, production refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from konfig.app import create_app
from konfig.settings import ConfigurationError, Settings, secret_key


def test_prefixed_and_original_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/plain")
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "42")
    monkeypatch.setenv("KONFIG_CORS_ORIGINS", "https://a.example.com, https://b.example.com")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+asyncpg://db/plain"
    assert settings.rate_limit_per_minute == 42
    assert settings.cors_origins == ["https://a.example.com", "https://b.example.com"]
    monkeypatch.setenv("KONFIG_DATABASE_URL", "sqlite:///x.db")
    assert Settings().resolved_database_url == "sqlite+aiosqlite:///x.db"


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}"


def test_development_generates_a_private_secret_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    first = secret_key(settings)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated a development JWT secret key" in caplog.text
    assert first not in caplog.text
    assert secret_key(Settings(data_dir=tmp_path)) == first
    assert len(first) >= 32


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="KONFIG_SECRET_KEY"):
        create_app(Settings(env="production", data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="too weak"):
        create_app(Settings(env="production", data_dir=tmp_path, secret_key="changeme"))
    with pytest.raises(ConfigurationError, match="KONFIG_ENCRYPTION_KEYS"):
        create_app(Settings(env="production", data_dir=tmp_path, secret_key="x" * 40))
    assert not (tmp_path / "secret_key").exists()
