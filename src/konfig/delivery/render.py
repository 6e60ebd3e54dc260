"""Rendering a resolved config: json, yaml, env, properties, and the explanation.

Flattening rules (the same whatever the namespace; keys are rendered in key order):

- ``json``: the mapping ``{key: value}`` itself; values of type json stay nested.
- ``yaml``: the same mapping as a YAML document.
- ``env``: one ``NAME=value`` line per key. NAME is the key upper-cased with every character
  other than letters, digits and ``_`` turned into ``_`` (``db.pool-size`` → ``DB_POOL_SIZE``).
  Strings are written as they are, numbers as JSON numbers, booleans as ``true``/``false``,
  null as nothing, objects and arrays as compact JSON (one variable per key). A value made only
  of ``A-Za-z0-9_./:@%+,-`` is written bare; any other in single quotes (taken literally by
  shells, docker compose and python-dotenv) unless it holds a single quote or a line break: then
  in double quotes with ``\\``, ``"``, newline and carriage return escaped.
- ``properties``: ``java.util.Properties`` text. Objects are flattened with ``.``
  (``db.pool.size=5``), arrays with ``[i]`` (``hosts[0]=a``, the Spring convention); empty
  objects and arrays are written as ``{}`` and ``[]``. Scalars are written as for env. Keys and
  values are escaped as ``Properties.load`` expects, non-ASCII as ``\\uXXXX``.

Two keys that render to the same env name or property key are a 409 ``CONFLICT`` naming both.

Secrets: a caller who may not see them gets each secret key's whole value as ``********`` in
every format (one line ``KEY=********`` in env and properties, however nested the value);
``masked`` makes that resolution, which renders like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import orjson
import yaml

from konfig.configs.schemas import MASK
from konfig.delivery.resolve import Resolution
from konfig.errors import Conflict

FORMATS = ("json", "yaml", "env", "properties")
MEDIA_TYPES = {
    "json": b"application/json",
    "yaml": b"application/yaml; charset=utf-8",
    "env": b"text/plain; charset=utf-8",
    "properties": b"text/plain; charset=utf-8",
    "explain": b"application/json",
}

_YamlDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BARE = re.compile(r"[A-Za-z0-9_./:@%+,-]*")
_NOT_ENV = re.compile(r"[^A-Za-z0-9_]")


def digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=12).hexdigest()


def named_etags(header: bytes) -> list[bytes]:
    """The entity tags an ``If-None-Match`` header names, quoted, weak ones made strong."""
    named = []
    for candidate in header.split(b","):
        candidate = candidate.strip()
        named.append(candidate[2:] if candidate.startswith(b"W/") else candidate)
    return named


def json_body(values: dict[str, Any]) -> bytes:
    return orjson.dumps(values)


def yaml_body(values: dict[str, Any]) -> bytes:
    text = yaml.dump(
        values, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return text.encode()


def scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def env_name(key: str) -> str:
    return _NOT_ENV.sub("_", key).upper()


def env_value(text: str) -> str:
    if _BARE.fullmatch(text):
        return text
    if "'" not in text and "\n" not in text and "\r" not in text:
        return f"'{text}'"
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _claim(seen: dict[str, str], rendered: str, key: str, what: str) -> None:
    if rendered in seen and seen[rendered] != key:
        raise Conflict(
            f"keys {seen[rendered]} and {key} both become the {what} {rendered}: "
            "rename one, or read this namespace as json or yaml",
            {"keys": [seen[rendered], key], what.replace(" ", "_"): rendered},
        )
    seen[rendered] = key


def env_body(values: dict[str, Any]) -> bytes:
    seen: dict[str, str] = {}
    lines = []
    for key, value in values.items():
        name = env_name(key)
        _claim(seen, name, key, "env name")
        lines.append(f"{name}={env_value(scalar_text(value))}\n")
    return "".join(lines).encode()


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for sub, item in value.items():
            _flatten(f"{prefix}.{sub}", item, out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(f"{prefix}[{index}]", item, out)
    else:
        out.append((prefix, scalar_text(value)))


def _escape_properties(text: str, *, is_key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\f":
            out.append("\\f")
        elif char == " " and (is_key or index == 0):
            out.append("\\ ")
        elif char in "=:" and is_key:
            out.append("\\" + char)
        elif char in "#!" and index == 0:
            out.append("\\" + char)
        elif ord(char) > 0x7E or ord(char) < 0x20:
            encoded = char.encode("utf-16-be")
            out.extend(
                f"\\u{int.from_bytes(encoded[i : i + 2], 'big'):04X}"
                for i in range(0, len(encoded), 2)
            )
        else:
            out.append(char)
    return "".join(out)


def properties_body(values: dict[str, Any]) -> bytes:
    flat: list[tuple[str, str]] = []
    owner: dict[str, str] = {}
    for key, value in values.items():
        start = len(flat)
        _flatten(key, value, flat)
        for name, _ in flat[start:]:
            _claim(owner, name, key, "property key")
    lines = [
        f"{_escape_properties(name, is_key=True)}={_escape_properties(text, is_key=False)}\n"
        for name, text in flat
    ]
    return "".join(lines).encode("ascii")


def masked(resolution: Resolution) -> Resolution:
    """The resolution as a caller who may not see secrets gets it: secret values masked."""
    if not resolution.secrets:
        return resolution
    values = {
        key: MASK if key in resolution.secrets else value
        for key, value in resolution.values.items()
    }
    return dataclasses.replace(resolution, values=values)


def explain_body(resolution: Resolution, etag: str) -> bytes:
    """For each key: its value, the namespace and revision it came from, what it overrides
    (and ``secret: true`` for a secret, ``references`` for a value built from others)."""
    keys = {}
    for key, value in resolution.values.items():
        source = resolution.sources[key]
        keys[key] = {
            "value": value,
            "namespace": source.namespace,
            "revision": source.revision,
            "overrides": [
                {"namespace": s.namespace, "revision": s.revision}
                for s in reversed(resolution.overrides.get(key, []))
            ],
        }
        if key in resolution.secrets:
            keys[key]["secret"] = True
        if key in resolution.references:  # the ``namespace:key`` links it was built from
            keys[key]["references"] = resolution.references[key]
    return orjson.dumps(
        {
            "namespace": resolution.name,
            "revision": resolution.revision,
            "etag": etag,
            "layers": [
                {"namespace": layer.name, "revision": layer.revision} for layer in resolution.layers
            ],
            "keys": keys,
        }
    )


def event_body(resolution: Resolution, etag: str) -> bytes:
    """The ``data`` of a server-sent event: one line of JSON."""
    return orjson.dumps(
        {
            "namespace": resolution.name,
            "revision": resolution.revision,
            "etag": etag,
            "config": resolution.values,
        }
    )


RENDERERS = {"json": json_body, "yaml": yaml_body, "env": env_body, "properties": properties_body}
