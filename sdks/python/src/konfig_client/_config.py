"""``Config``: one resolved config, with typed getters that refuse a value of another type."""

from __future__ import annotations

from collections.abc import Iterator, KeysView
from datetime import UTC, datetime
from typing import Any

from konfig_client._exceptions import MissingKey, WrongType


class _Missing:
    def __repr__(self) -> str:
        return "<no default>"


_MISSING: Any = _Missing()


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class Config:
    """A namespace's values merged over what it inherits, as the server resolved them.

    ``values`` is the whole dict; ``config["timeout"]`` and ``"timeout" in config`` read it. It has
    typed getters: ``get_string``, ``get_number``, ``get_boolean``, ``get_json``. Each raises
    :class:`MissingKey` for an absent key (unless given a default) and :class:`WrongType` for a
    value of another type. ``stale`` is true when the server was unreachable and the config came
    from the last-known-good file, saved at ``saved_at``.
    """

    def __init__(
        self,
        namespace: str,
        values: dict[str, Any],
        etag: str | None = None,
        *,
        stale: bool = False,
        saved_at: datetime | None = None,
    ) -> None:
        self.namespace = namespace
        self.values = values
        self.etag = etag
        self.stale = stale
        self.saved_at = saved_at

    @classmethod
    def from_cache(cls, namespace: str, values: Any, etag: str | None, saved_at: float) -> Config:
        return cls(
            namespace,
            values if isinstance(values, dict) else {},
            etag,
            stale=True,
            saved_at=datetime.fromtimestamp(saved_at, UTC),
        )

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def keys(self) -> KeysView[str]:
        return self.values.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        stale = ", stale=True" if self.stale else ""
        return f"Config({self.namespace!r}, {sorted(self.values)!r}, etag={self.etag!r}{stale})"

    def _typed(self, key: str, default: Any, expected: str) -> Any:
        if key not in self.values:
            if default is not _MISSING:
                return default
            raise MissingKey(
                f"{self.namespace} has no key {key}", code="MISSING_KEY", details={"key": key}
            )
        value = self.values[key]
        actual = json_type(value)
        if expected != "json" and actual != expected:
            raise WrongType(
                f"{self.namespace}: {key} is a {actual}, not a {expected}",
                code="WRONG_TYPE",
                details={"key": key, "expected": expected, "actual": actual},
            )
        return value

    def get_string(self, key: str, default: str = _MISSING) -> str:
        """The string value of ``key``; ``default`` when the key is absent."""
        value: str = self._typed(key, default, "string")
        return value

    def get_number(self, key: str, default: float = _MISSING) -> int | float:
        """The number value of ``key`` (an ``int`` when it has no fraction); never a boolean."""
        value: int | float = self._typed(key, default, "number")
        return value

    def get_boolean(self, key: str, default: bool = _MISSING) -> bool:
        """The boolean value of ``key``."""
        value: bool = self._typed(key, default, "boolean")
        return value

    def get_json(self, key: str, default: Any = _MISSING) -> Any:
        """The value of ``key`` as decoded JSON, of any type (objects, arrays, scalars)."""
        return self._typed(key, default, "json")
