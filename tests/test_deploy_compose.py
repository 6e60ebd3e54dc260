"""docker-compose.yml and .env.example, checked statically (there is no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ENCRYPTION_KEY", re.I)
REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]*\}")
ANY_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?+][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            pairs[name.strip()] = value.strip()
    return pairs


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def healthcheck_test(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(word) for word in test]


def test_the_stack_is_konfig_its_migrations_postgres_and_redis(services: dict[str, Any]) -> None:
    assert set(services) == {"konfig", "migrate", "postgres", "redis"}


def test_konfig_is_built_from_the_dockerfile_and_published_on_8000(
    services: dict[str, Any],
) -> None:
    konfig = services["konfig"]
    build = konfig["build"]
    assert build["context"] == "."
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
    published = [str(port) for port in konfig["ports"]]
    assert any(port.endswith(":8000") for port in published), published


def test_konfig_waits_for_its_migrations_and_healthy_postgres_and_redis(
    services: dict[str, Any],
) -> None:
    depends_on = services["konfig"]["depends_on"]
    assert isinstance(depends_on, dict), "the short list form cannot wait for health"
    assert depends_on == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_every_service_has_a_healthcheck_with_a_real_probe(services: dict[str, Any]) -> None:
    konfig = healthcheck_test(services["konfig"])
    assert konfig[:3] == ["CMD", "python", "-c"], "the slim image has no curl"
    compile(konfig[3], "healthcheck", "exec")
    assert "http://127.0.0.1:8000/health" in konfig[3]
    assert "pg_isready" in " ".join(healthcheck_test(services["postgres"]))
    assert healthcheck_test(services["redis"])[1:] == ["redis-cli", "ping"]
    for name, service in services.items():
        if name == "migrate":  # runs once and exits: nothing to probe
            continue
        check = service["healthcheck"]
        assert {"interval", "timeout", "retries"} <= check.keys(), name


def test_konfig_reaches_the_databases_by_service_name(services: dict[str, Any]) -> None:
    env = environment(services["konfig"])
    migrate = environment(services["migrate"])
    postgres_env = environment(services["postgres"])
    for database in (
        env["KONFIG_DATABASE_URL"],
        migrate["KONFIG_MIGRATION_DATABASE_URL"],
        migrate["KONFIG_ADMIN_DATABASE_URL"],
    ):
        assert database.startswith("postgresql://")
        assert "@postgres:5432/" in database
        assert database.endswith("/" + postgres_env["POSTGRES_DB"])
    assert env["KONFIG_REDIS_URL"].startswith("redis://redis:6379")
    assert env["KONFIG_DATA_DIR"] == "/data"


def test_konfig_serves_as_the_app_role_and_migrates_as_the_owner(
    services: dict[str, Any],
) -> None:
    """Row-level security holds only for a role that owns no table and is not a superuser: the
    compose superuser makes the two roles, the owner migrates, Konfig serves as the app role."""
    env = environment(services["konfig"])
    migrate = environment(services["migrate"])
    superuser = environment(services["postgres"])["POSTGRES_USER"]
    assert env["KONFIG_DATABASE_URL"].startswith("postgresql://konfig_app:")
    assert env["KONFIG_MIGRATE_ON_START"] == "false"
    assert "KONFIG_MIGRATION_DATABASE_URL" not in env
    assert migrate["KONFIG_MIGRATION_DATABASE_URL"].startswith("postgresql://konfig_owner:")
    assert migrate["KONFIG_ADMIN_DATABASE_URL"].startswith(f"postgresql://{superuser}:")
    command = " ".join(services["migrate"]["command"])
    assert command.index("konfig db create-role") < command.index("konfig db upgrade")
    assert services["migrate"]["image"] == services["konfig"]["image"]
    assert services["migrate"]["restart"] == "no"


def test_data_lives_on_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    mounts = {
        name: dict(str(volume).split(":", 1)[::-1] for volume in service.get("volumes", []))
        for name, service in services.items()
    }
    assert mounts["konfig"]["/data"] in declared
    assert mounts["postgres"]["/var/lib/postgresql/data"] in declared


@pytest.mark.parametrize("name", ["konfig", "migrate"])
def test_konfig_runs_hardened(services: dict[str, Any], name: str) -> None:
    konfig = services[name]
    assert konfig["read_only"] is True
    assert "/tmp" in konfig["tmpfs"]  # noqa: S108
    assert konfig["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in konfig["security_opt"]


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"


def test_secrets_come_from_the_env_file_never_from_the_compose_file(
    services: dict[str, Any],
) -> None:
    assert services["konfig"]["env_file"] == [".env"]
    for name, service in services.items():
        for variable, value in environment(service).items():
            if SECRET_NAME.search(variable):
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}: {variable} is written out"
        for variable, value in environment(service).items():
            secret = re.search(r"://[^:/@]+:([^@]+)@", value)
            if secret:
                assert REQUIRED_VARIABLE.fullmatch(secret[1]), f"{name}: {variable} has a password"


def test_env_example_names_every_variable_compose_needs(compose: dict[str, Any]) -> None:
    example = env_example()
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(REQUIRED_VARIABLE.findall(text))
    assert required, "no ${VAR:?message} in docker-compose.yml"
    assert required <= example.keys()
    # Every interpolated variable is either in .env.example or has a default.
    for variable in ANY_VARIABLE.findall(text):
        assert variable in example or re.search(rf"\$\{{{variable}:?-", text), variable


def test_env_example_holds_the_production_keys_as_empty_placeholders() -> None:
    example = env_example()
    assert example["KONFIG_ENV"] == "production"
    for name in (
        "KONFIG_SECRET_KEY",
        "KONFIG_ENCRYPTION_KEYS",
        "POSTGRES_PASSWORD",
        "KONFIG_OWNER_PASSWORD",
        "KONFIG_APP_PASSWORD",
    ):
        assert name in example
        # Empty on purpose: a copied-but-unedited .env makes Konfig (production) and compose
        # refuse to start, instead of running on a published example secret.
        assert example[name] == "", f"{name} has a value in the committed example"
    text = (ROOT / ".env.example").read_text()
    assert "secrets.token_urlsafe" in text, "no instructions to generate the keys"
