"""How the CLI parses typed values and names environment variables (no server needed)."""

from __future__ import annotations

import pytest
import typer

from konfig.cli.client import parse_value
from konfig.cli.resolved import environment
from konfig.cli.tokens import parse_scope


@pytest.mark.parametrize(
    ("raw", "value_type", "expected"),
    [
        ("100", "number", 100),
        ("0.25", "number", 0.25),
        ("-3", "number", -3),
        ("true", "boolean", True),
        ("False", "boolean", False),
        ('{"a": [1, 2]}', "json", {"a": [1, 2]}),
        ("null", "json", None),
        ("100", "string", "100"),
        ("eu-west", "select", "eu-west"),
    ],
)
def test_values_are_parsed_by_type(raw: str, value_type: str, expected: object) -> None:
    assert parse_value(raw, value_type) == expected


@pytest.mark.parametrize(
    ("raw", "value_type"), [("many", "number"), ("maybe", "boolean"), ("{", "json")]
)
def test_a_bad_value_is_a_usage_error(raw: str, value_type: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_value(raw, value_type)


def test_environment_names_and_values() -> None:
    config = {
        "db.pool-size": 5,
        "feature_x": True,
        "limits": {"rps": 5},
        "hosts": ["a", "b"],
        "empty": None,
        "name": "pay ments",
    }
    assert environment(config, "APP_") == {
        "APP_DB_POOL_SIZE": "5",
        "APP_FEATURE_X": "true",
        "APP_LIMITS": '{"rps":5}',
        "APP_HOSTS": '["a","b"]',
        "APP_EMPTY": "",
        "APP_NAME": "pay ments",
    }


def test_two_keys_for_one_variable_are_refused() -> None:
    with pytest.raises(typer.Exit):
        environment({"db.host": "a", "db-host": "b"})


def test_token_scopes() -> None:
    assert parse_scope("payments/*:read,write") == {
        "namespaces": "payments/*",
        "permissions": ["read", "write"],
    }
    assert parse_scope("payments:read,secrets")["permissions"] == ["read", "secrets"]
    for bad in ("payments/*", "payments/*:admin", ":read"):
        with pytest.raises(typer.BadParameter):
            parse_scope(bad)
