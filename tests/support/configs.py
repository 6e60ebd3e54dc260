"""Config entry URLs, on the single-entry write path or FastAPI's route, and entries that set
every setting."""

from __future__ import annotations

from typing import Any

from tests.support.revisions import API


def entry(ns: str, key: str = "") -> str:
    return f"{API}/namespaces/{ns}/configs" + (f"/{key}" if key else "")


def routed(ns: str) -> str:
    """The namespace id spelled without hyphens: the fast path leaves it to FastAPI's route."""
    return ns.replace("-", "")


SECRET: dict[str, Any] = {
    "value": "s3cret-Old",
    "value_type": "string",
    "validation_schema": {"min_length": 8},
    "description": "the database password",
    "is_secret": True,
}


POOL: dict[str, Any] = {
    "value": 10,
    "value_type": "number",
    "validation_schema": {"min_value": 1, "max_value": 1000},
    "description": "connections",
    "is_secret": False,
}
