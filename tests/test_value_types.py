"""Hypothesis properties for every value type: valid values accepted, invalid ones rejected,
and (through the API) nothing stored when a write is rejected."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from konfig.app import create_app
from konfig.configs.types import Limits, check_entry
from tests.conftest import PASSWORD, Backend, wipe

LIMITS = Limits()
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(-(10**9), 10**9) | st.floats(-1e9, 1e9, allow_nan=False)


@st.composite
def string_case(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    low = draw(st.integers(0, 10))
    high = draw(st.integers(low, 20))
    value = draw(st.text(alphabet="abcXYZ019 -", max_size=30))
    schema = {
        "min_length": low,
        "max_length": high,
        "pattern": "^[a-z]*$" if draw(st.booleans()) else ".*",
    }
    return schema, value


@given(string_case())
def test_strings(case: tuple[dict[str, Any], str]) -> None:
    schema, value = case
    valid = schema["min_length"] <= len(value) <= schema["max_length"] and (
        schema["pattern"] == ".*" or all(c in "abcdefghijklmnopqrstuvwxyz" for c in value)
    )
    assert (check_entry("string", value, schema, LIMITS) == []) is valid


@given(numbers, numbers, numbers, st.booleans())
def test_numbers(value: float, a: float, b: float, integer: bool) -> None:
    low, high = min(a, b), max(a, b)
    schema = {"min_value": low, "max_value": high, "integer": integer}
    valid = low <= value <= high and (not integer or float(value).is_integer())
    assert (check_entry("number", value, schema, LIMITS) == []) is valid


@given(json_values)
def test_only_booleans_are_booleans(value: Any) -> None:
    assert (check_entry("boolean", value, None, LIMITS) == []) is isinstance(value, bool)


@given(
    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True),
    st.text(max_size=5),
)
def test_selects(options: list[str], value: str) -> None:
    assert (check_entry("select", value, {"options": options}, LIMITS) == []) is (value in options)


@given(json_values)
def test_json_schema(value: Any) -> None:
    schema = {"json_schema": {"type": "object", "required": ["a"]}}
    valid = isinstance(value, dict) and "a" in value
    if value is None:
        valid = False  # null is never a value
    assert (check_entry("json", value, schema, LIMITS) == []) is valid


@given(json_values)
def test_values_of_the_wrong_json_kind_are_rejected(value: Any) -> None:
    for value_type, ok in (
        ("string", isinstance(value, str)),
        ("number", isinstance(value, int | float) and not isinstance(value, bool)),
    ):
        assert (check_entry(value_type, value, None, LIMITS) == []) is ok


typed_cases = st.one_of(
    string_case().map(lambda c: ("string", c[1], c[0])),
    st.tuples(
        st.just("number"), numbers, st.just({"min_value": -100, "max_value": 100, "integer": True})
    ),
    st.tuples(st.just("boolean"), json_values, st.just(None)),
    st.tuples(
        st.just("select"),
        st.sampled_from(["DEBUG", "INFO", "TRACE", "info"]),
        st.just({"options": ["DEBUG", "INFO", "WARNING", "ERROR"]}),
    ),
    st.tuples(
        st.just("json"), json_values, st.just({"json_schema": {"type": "array", "maxItems": 2}})
    ),
)


def test_the_api_stores_exactly_the_valid_writes(backend: Backend, settings: Any) -> None:
    """Through HTTP: a valid write reads back equal; a rejected one leaves no trace."""
    app = create_app(settings)
    try:
        with TestClient(app) as http:
            http.post(
                "/api/v1/auth/register",
                json={"name": "prop", "email": "p@prop.example.com", "password": PASSWORD},
            )
            token = http.post(
                "/api/v1/auth/login", json={"email": "p@prop.example.com", "password": PASSWORD}
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            ns = http.post("/api/v1/namespaces", headers=headers, json={"name": "props"}).json()[
                "id"
            ]
            counter = iter(range(10**6))

            @settings_for_api
            @given(typed_cases)
            def prop(case: tuple[str, Any, dict[str, Any] | None]) -> None:
                value_type, value, schema = case
                key = f"k{next(counter)}"
                expected_ok = check_entry(value_type, value, schema, LIMITS) == []
                answer = http.post(
                    f"/api/v1/namespaces/{ns}/configs",
                    headers=headers,
                    json={
                        "key": key,
                        "value": value,
                        "value_type": value_type,
                        "validation_schema": schema,
                    },
                )
                read = http.get(f"/api/v1/namespaces/{ns}/configs/{key}", headers=headers)
                if expected_ok:
                    assert answer.status_code == 201, answer.text
                    assert read.json()["value"] == value
                else:
                    assert answer.status_code in (413, 422), answer.text
                    assert read.status_code == 404

            prop()
            revisions = http.get(f"/api/v1/namespaces/{ns}", headers=headers).json()["revision"]
            stored = http.get(f"/api/v1/namespaces/{ns}", headers=headers).json()["entry_count"]
            assert revisions == stored  # one revision per accepted write, none for rejected ones
    finally:
        asyncio.run(wipe(backend.url))


settings_for_api = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
