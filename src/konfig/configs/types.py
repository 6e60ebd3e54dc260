"""Value types and their validation schemas, enforced on every write path.

Each check returns a list of problems rather than raising, so a document or an import can
report every bad entry at once. Patterns run on RE2 (linear time): no pattern or value can
stall the server.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
import re2

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

from konfig.flags.definition import EVALUATORS_KEY, check_evaluators, check_flag

VALUE_TYPES = ("string", "number", "boolean", "select", "json", "flag")
SCHEMA_KEYS: dict[str, frozenset[str]] = {
    "string": frozenset({"min_length", "max_length", "pattern"}),
    "number": frozenset({"min_value", "max_value", "integer"}),
    "boolean": frozenset(),
    "select": frozenset({"options"}),
    "json": frozenset({"json_schema"}),
    "flag": frozenset(),  # a flag's definition is its own schema (konfig.flags.definition)
}
MAX_PATTERN_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class Limits:
    max_value_bytes: int = 64 * 1024
    max_json_depth: int = 32


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: which part of the entry, which rule, and a sentence for people."""

    field: str  # "value", "value_type" or "validation_schema"
    rule: str
    message: str
    too_large: bool = False

    def as_dict(self, key: str) -> dict[str, str]:
        return {"key": key, "field": self.field, "rule": self.rule, "message": self.message}


class PatternError(ValueError):
    pass


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"is not a valid RE2 pattern ({detail})") from exc


def _re2_pattern(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:
        yield ValidationError(f"pattern {pattern!r} {exc}")
        return
    if compiled.search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _re2_pattern_properties(
    validator: Any, pattern_properties: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        compiled = compile_pattern(pattern)
        for name, value in instance.items():
            if compiled.search(name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


@lru_cache(maxsize=1)
def safe_validator() -> Any:
    """JSON Schema 2020-12, with the regex keywords moved onto RE2 (jsonschema uses Python's
    `re`). Made on the first json_schema met: jsonschema is a start-up's worth of imports."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(
        Draft202012Validator,
        {"pattern": _re2_pattern, "patternProperties": _re2_pattern_properties},
    )


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping early once past ``limit``."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        level = nxt if nxt else []
        if not nxt:
            break
    return depth


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that tells 1, 1.0 and true apart the way a JSON reader would."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def check_schema(value_type: str, schema: dict[str, Any] | None) -> list[Problem]:
    """Problems with a validation schema itself (unknown keys, wrong shapes)."""
    if value_type not in VALUE_TYPES:
        return [
            Problem(
                "value_type",
                "value_type",
                f"unknown value_type {value_type!r}; use one of {', '.join(VALUE_TYPES)}",
            )
        ]
    schema = schema or {}
    if not isinstance(schema, dict):
        return [
            Problem("validation_schema", "validation_schema", "validation_schema must be an object")
        ]
    allowed = SCHEMA_KEYS[value_type]
    problems = [
        Problem(
            "validation_schema",
            name,
            f"{name!r} is not a rule for {value_type} values"
            + (
                f" (allowed: {', '.join(sorted(allowed))})"
                if allowed
                else f" ({value_type} values take no rules)"
            ),
        )
        for name in schema
        if name not in allowed
    ]
    if problems:
        return problems
    check = _SCHEMA_CHECKS.get(value_type)
    return check(schema) if check else []


def _non_negative_int(schema: dict[str, Any], name: str) -> list[Problem]:
    value = schema.get(name)
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return [Problem("validation_schema", name, f"{name} must be a whole number >= 0")]
    return []


def _string_schema(schema: dict[str, Any]) -> list[Problem]:
    problems = _non_negative_int(schema, "min_length") + _non_negative_int(schema, "max_length")
    low, high = schema.get("min_length"), schema.get("max_length")
    if not problems and low is not None and high is not None and low > high:
        problems.append(
            Problem("validation_schema", "min_length", "min_length is greater than max_length")
        )
    pattern = schema.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            problems.append(Problem("validation_schema", "pattern", "pattern must be a string"))
        else:
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                problems.append(Problem("validation_schema", "pattern", f"pattern {exc}"))
    return problems


def _number_schema(schema: dict[str, Any]) -> list[Problem]:
    problems = [
        Problem("validation_schema", name, f"{name} must be a number")
        for name in ("min_value", "max_value")
        if schema.get(name) is not None and not _is_number(schema[name])
    ]
    low, high = schema.get("min_value"), schema.get("max_value")
    if not problems and low is not None and high is not None and low > high:
        problems.append(
            Problem("validation_schema", "min_value", "min_value is greater than max_value")
        )
    if schema.get("integer") is not None and not isinstance(schema["integer"], bool):
        problems.append(Problem("validation_schema", "integer", "integer must be true or false"))
    return problems


def _select_schema(schema: dict[str, Any]) -> list[Problem]:
    options = schema.get("options")
    if not isinstance(options, list) or not options:
        return [
            Problem("validation_schema", "options", "select values need a non-empty options list")
        ]
    if any(not (isinstance(o, str | bool) or _is_number(o)) for o in options):
        return [
            Problem("validation_schema", "options", "options must be strings, numbers or booleans")
        ]
    for i, option in enumerate(options):
        if any(_same(option, other) for other in options[:i]):
            return [Problem("validation_schema", "options", f"option {option!r} appears twice")]
    return []


def _json_schema(schema: dict[str, Any]) -> list[Problem]:
    inner = schema.get("json_schema")
    if inner is None:
        return []
    if not isinstance(inner, dict | bool):
        return [
            Problem("validation_schema", "json_schema", "json_schema must be a JSON Schema object")
        ]
    from jsonschema.exceptions import SchemaError

    try:
        safe_validator().check_schema(inner)
        # Compile every pattern now, so a bad one is refused with the schema, not at read time.
        _walk_patterns(inner)
    except SchemaError as exc:
        return [
            Problem(
                "validation_schema",
                "json_schema",
                f"json_schema is not a valid JSON Schema: {exc.message}",
            )
        ]
    except PatternError as exc:
        return [Problem("validation_schema", "json_schema", f"json_schema pattern {exc}")]
    return []


def _walk_patterns(node: Any) -> None:
    if isinstance(node, dict):
        for name, child in node.items():
            if name == "pattern" and isinstance(child, str):
                compile_pattern(child)
            elif name == "patternProperties" and isinstance(child, dict):
                for pattern in child:
                    compile_pattern(pattern)
            _walk_patterns(child)
    elif isinstance(node, list):
        for child in node:
            _walk_patterns(child)


_SCHEMA_CHECKS = {
    "string": _string_schema,
    "number": _number_schema,
    "select": _select_schema,
    "json": _json_schema,
}


def check_value(
    value_type: str, value: Any, schema: dict[str, Any] | None, limits: Limits
) -> list[Problem]:
    """Problems with a value under its type and (already checked) schema."""
    schema = schema or {}
    try:
        encoded = orjson.dumps(value)
    except TypeError:  # orjson refuses integers beyond 64 bits
        return [Problem("value", "type", "integers must fit in 64 bits")]
    # A string counts as its UTF-8 text, not its JSON spelling (quotes, escapes).
    size = len(value.encode("utf-8")) if isinstance(value, str) else len(encoded)
    if size > limits.max_value_bytes:
        return [
            Problem(
                "value",
                "max_value_bytes",
                f"value is {size} bytes, over the limit of {limits.max_value_bytes} bytes",
                too_large=True,
            )
        ]
    if value is None:
        return [Problem("value", "required", "value must not be null")]
    return _VALUE_CHECKS[value_type](value, schema, limits)


def _string_value(value: Any, schema: dict[str, Any], _: Limits) -> list[Problem]:
    if not isinstance(value, str):
        return [
            Problem("value", "type", f"a string value must be a JSON string, not {_kind(value)}")
        ]
    problems = []
    if schema.get("min_length") is not None and len(value) < schema["min_length"]:
        problems.append(
            Problem(
                "value",
                "min_length",
                f"value is shorter than min_length {schema['min_length']}",
            )
        )
    if schema.get("max_length") is not None and len(value) > schema["max_length"]:
        problems.append(
            Problem(
                "value",
                "max_length",
                f"value is longer than max_length {schema['max_length']}",
            )
        )
    if (
        schema.get("pattern") is not None
        and compile_pattern(schema["pattern"]).search(value) is None
    ):
        problems.append(
            Problem("value", "pattern", f"value does not match the pattern {schema['pattern']!r}")
        )
    return problems


def _number_value(value: Any, schema: dict[str, Any], _: Limits) -> list[Problem]:
    if isinstance(value, float) and not math.isfinite(value):
        return [
            Problem("value", "type", "a number value must be finite (1e999 and the like are not)")
        ]
    if not _is_number(value):
        return [
            Problem("value", "type", f"a number value must be a JSON number, not {_kind(value)}")
        ]
    problems = []
    if schema.get("integer") and not (isinstance(value, int) or float(value).is_integer()):
        problems.append(Problem("value", "integer", "value is not a whole number"))
    if schema.get("min_value") is not None and value < schema["min_value"]:
        problems.append(
            Problem("value", "min_value", f"value is below min_value {schema['min_value']}")
        )
    if schema.get("max_value") is not None and value > schema["max_value"]:
        problems.append(
            Problem("value", "max_value", f"value is above max_value {schema['max_value']}")
        )
    return problems


def _boolean_value(value: Any, schema: dict[str, Any], _: Limits) -> list[Problem]:
    if not isinstance(value, bool):
        return [
            Problem("value", "type", f"a boolean value must be true or false, not {_kind(value)}")
        ]
    return []


def _select_value(value: Any, schema: dict[str, Any], _: Limits) -> list[Problem]:
    options = schema.get("options") or []
    if not any(_same(value, option) for option in options):
        shown = ", ".join(orjson.dumps(o).decode() for o in options)
        return [
            Problem(
                "value",
                "options",
                f"value is not one of the options: {shown}",
            )
        ]
    return []


def _json_value(value: Any, schema: dict[str, Any], limits: Limits) -> list[Problem]:
    if json_depth(value, limits.max_json_depth) > limits.max_json_depth:
        return [
            Problem(
                "value",
                "max_json_depth",
                f"value nests deeper than the limit of {limits.max_json_depth} levels",
            )
        ]
    inner = schema.get("json_schema")
    if inner is None:
        return []
    try:
        found = list(safe_validator()(inner).iter_errors(value))
    except RecursionError:  # a $ref that leads back to itself without consuming the value
        message = "json_schema refers to itself without end (a $ref loop)"
        return [Problem("validation_schema", "json_schema", message)]
    errors = sorted(found, key=lambda e: list(e.absolute_path))
    return [
        Problem(
            "value",
            "json_schema",
            f"at {'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}",
        )
        for error in errors[:20]
    ]


def _flag_value(value: Any, schema: dict[str, Any], limits: Limits) -> list[Problem]:
    if json_depth(value, limits.max_json_depth) > limits.max_json_depth:
        message = f"the flag nests deeper than the limit of {limits.max_json_depth} levels"
        return [Problem("value", "max_json_depth", message)]
    return [Problem("value", p.rule, p.message) for p in check_flag(value)]


_VALUE_CHECKS = {
    "string": _string_value,
    "number": _number_value,
    "boolean": _boolean_value,
    "select": _select_value,
    "json": _json_value,
    "flag": _flag_value,
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def check_entry(
    value_type: str,
    value: Any,
    schema: dict[str, Any] | None,
    limits: Limits,
    *,
    secret: bool = False,
    key: str | None = None,
) -> list[Problem]:
    """Every problem with an entry: its schema first, then its value under that schema.

    Messages never quote the value; JSON Schema's own messages do, so a secret's are replaced.
    Flags are never secret (every service evaluating them sees their variants); the entry
    ``flag_evaluators`` holds a namespace's shared targeting rules and is checked as such.
    """
    problems = check_schema(value_type, schema)
    if problems:
        return problems
    if value_type == "flag" and secret:
        return [Problem("is_secret", "is_secret", "a flag cannot be secret")]
    problems = check_value(value_type, value, schema, limits)
    if not problems and key == EVALUATORS_KEY and value_type == "json":
        problems = [Problem("value", p.rule, p.message) for p in check_evaluators(value)]
    if secret:
        problems = [
            Problem(p.field, p.rule, "value does not satisfy json_schema", p.too_large)
            if p.rule == "json_schema"
            else p
            for p in problems
        ]
    return problems
