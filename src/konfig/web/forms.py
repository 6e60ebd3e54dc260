"""The entry editor's form: raw fields in, a typed value and schema out, errors per field.

Parsing only turns text into JSON values (a number field into a number, the JSON editor into
JSON); every rule about values stays in ``konfig.configs.types`` on the server, and its
problems are mapped back onto the field they concern.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from konfig.configs.types import SCHEMA_KEYS, VALUE_TYPES
from konfig.errors import KonfigError
from konfig.input_guard import bad_text, nests_deeper

VALUE_FIELDS = {value_type: f"value_{value_type}" for value_type in VALUE_TYPES}
SCHEMA_FIELDS = sorted({name for names in SCHEMA_KEYS.values() for name in names})
KEY_RULES = (
    "Use letters, digits, '_', '.' and '-', starting with a letter or '_' "
    "(at most 255 characters), e.g. max_connections."
)
_INTEGER = re.compile(r"^[+-]?\d+$")
_TEXT_FIELDS = (
    "key",
    "value_type",
    "description",
    "message",
    "version",
    *VALUE_FIELDS.values(),
    *SCHEMA_FIELDS,
)


def text(form: FormData | Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@dataclass
class EntryForm:
    """What the editor shows (``fields``, as typed) and what it means once parsed."""

    fields: dict[str, str] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    value: Any = None
    has_value: bool = True
    schema: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return self.fields.get("key", "")

    @property
    def value_type(self) -> str:
        return self.fields.get("value_type", "string")

    @property
    def description(self) -> str:
        return self.fields.get("description", "")

    @property
    def is_secret(self) -> bool:
        return "is_secret" in self.checked

    @property
    def message(self) -> str | None:
        return self.fields.get("message") or None

    @property
    def version(self) -> int | None:
        raw = self.fields.get("version", "")
        return int(raw) if raw.isdigit() else None

    @property
    def value_field(self) -> str:
        return VALUE_FIELDS.get(self.value_type, "value_string")

    def options(self) -> list[Any]:
        """The select options as typed so far (for the select editor's list)."""
        return parse_options(self.fields.get("options", ""))


# Deeper than any value may be (KONFIG_MAX_JSON_DEPTH judges it after), well short of what
# would exhaust the parser's recursion.
_PARSE_DEPTH = 512


def _json(raw: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    if nests_deeper(raw.encode("utf-8", "surrogatepass"), _PARSE_DEPTH):
        raise ValueError(f"The JSON nests deeper than {_PARSE_DEPTH} levels.")
    parsed = json.loads(raw, parse_constant=refuse)
    refused = bad_text(parsed, exempt=lambda _: True)  # a lone surrogate: no UTF-8 carries it
    if refused is not None:
        raise ValueError(refused.message)
    return parsed


def json_error(raw: str) -> str | None:
    """Where the JSON is broken, as a person reads it: line, column and what was expected."""
    try:
        _json(raw)
    except json.JSONDecodeError as exc:
        return f"Line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except ValueError as exc:
        return str(exc)
    return None


def parse_number(raw: str) -> int | float:
    raw = raw.strip()
    if _INTEGER.match(raw):
        return int(raw)
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError(raw)
    return number


def parse_option(line: str) -> Any:
    """``5`` and ``true`` are a number and a boolean; ``"5"`` or anything else is a string."""
    try:
        value = _json(line)
    except ValueError:
        return line
    return value if isinstance(value, str | bool | int | float) else line


def parse_options(raw: str) -> list[Any]:
    return [parse_option(line.strip()) for line in raw.splitlines() if line.strip()]


def show_option(option: Any) -> str:
    """An option as a line of the options box, quoted only where it would read as another type."""
    if isinstance(option, str):
        return json.dumps(option) if parse_option(option) != option else option
    return json.dumps(option)


def _schema(form: EntryForm) -> dict[str, Any] | None:
    fields = form.fields
    schema: dict[str, Any] = {}
    value_type = form.value_type
    for name in ("min_length", "max_length"):
        if value_type == "string" and fields.get(name, "").strip():
            raw = fields[name].strip()
            if not _INTEGER.match(raw):
                form.errors[name] = "Enter a whole number, or leave it empty."
            else:
                schema[name] = int(raw)
    if value_type == "string" and fields.get("pattern"):
        schema["pattern"] = fields["pattern"]
    for name in ("min_value", "max_value"):
        if value_type == "number" and fields.get(name, "").strip():
            try:
                schema[name] = parse_number(fields[name])
            except ValueError:
                form.errors[name] = "Enter a number, or leave it empty."
    if value_type == "number" and "integer" in form.checked:
        schema["integer"] = True
    if value_type == "select":
        schema["options"] = parse_options(fields.get("options", ""))
    if value_type == "json" and fields.get("json_schema", "").strip():
        problem = json_error(fields["json_schema"])
        if problem:
            form.errors["json_schema"] = f"This JSON Schema is not valid JSON. {problem}"
        else:
            schema["json_schema"] = _json(fields["json_schema"])
    return schema or None


def _value(form: EntryForm, *, keep_secret: bool) -> None:
    value_type, raw = form.value_type, form.fields.get(form.value_field, "")
    if keep_secret and value_type != "boolean" and raw == "":
        form.has_value = False  # an empty secret field keeps the stored value
        return
    if value_type == "string":
        form.value = raw
    elif value_type == "number":
        try:
            form.value = parse_number(raw)
        except ValueError:
            form.errors[form.value_field] = (
                "Enter a number, like 42 or 0.5." if raw.strip() else "Enter a number."
            )
    elif value_type == "boolean":
        form.value = "value_boolean" in form.checked
    elif value_type == "select":
        if not raw:
            form.errors[form.value_field] = "Choose one of the options."
        else:
            try:
                form.value = _json(raw)
            except ValueError:
                form.value = raw
    elif value_type == "json":
        problem = json_error(raw) if raw.strip() else "Enter a JSON value, such as {} or []."
        if problem:
            form.errors[form.value_field] = problem
        else:
            form.value = _json(raw)


# What an editor's form sends: the value, the description, the change note. The type, rules and
# secret flag are shown to them, not sent (changing them is an admin's).
_EDITABLE = ("description", "message", "version", "value_boolean", *VALUE_FIELDS.values())


def with_rules_of(submitted: FormData, stored: EntryForm) -> dict[str, str]:
    """An editor's submission completed with the entry's stored rules, to read the value by."""
    completed = dict(stored.fields)
    completed.update({name: "yes" for name in ("integer", "is_secret") if name in stored.checked})
    completed.pop("value_boolean", None)
    completed.update({name: text(submitted, name) for name in _EDITABLE if name in submitted})
    return completed


def parse_entry_form(
    form: FormData | Mapping[str, Any], *, key: str | None = None, keep_secret: bool
) -> EntryForm:
    """Read the editor; ``keep_secret``: an empty value field means 'leave the secret as is'."""
    entry = EntryForm(
        fields={name: text(form, name) for name in _TEXT_FIELDS},
        checked={name for name in ("value_boolean", "integer", "is_secret") if form.get(name)},
    )
    if key is not None:
        entry.fields["key"] = key
    if entry.value_type not in VALUE_TYPES:
        entry.errors["value_type"] = f"Choose one of: {', '.join(VALUE_TYPES)}."
        return entry
    entry.schema = _schema(entry)
    _value(entry, keep_secret=keep_secret)
    return entry


def form_for_entry(
    *,
    key: str,
    value: Any,
    value_type: str,
    schema: dict[str, Any] | None,
    description: str,
    is_secret: bool,
    version: int,
) -> EntryForm:
    """The editor filled in with an entry as stored (a secret's value left out)."""
    entry = EntryForm(
        fields={"key": key, "value_type": value_type, "description": description},
        checked={"is_secret"} if is_secret else set(),
    )
    entry.fields["version"] = str(version)
    schema = schema or {}
    for name in ("min_length", "max_length", "pattern", "min_value", "max_value"):
        if schema.get(name) is not None:
            entry.fields[name] = str(schema[name])
    if schema.get("integer"):
        entry.checked.add("integer")
    if "options" in schema:
        entry.fields["options"] = "\n".join(show_option(o) for o in schema["options"])
    if schema.get("json_schema") is not None:
        entry.fields["json_schema"] = json.dumps(schema["json_schema"], indent=2)
    if is_secret:
        entry.value = None
    elif value_type == "boolean":
        if value is True:
            entry.checked.add("value_boolean")
    elif value_type == "json":
        entry.fields["value_json"] = json.dumps(value, indent=2)
    elif value_type == "select":
        entry.fields["value_select"] = json.dumps(value)
    else:
        entry.fields[VALUE_FIELDS[value_type]] = str(value) if value_type == "number" else value
    entry.value = value
    return entry


def place_server_errors(entry: EntryForm, exc: KonfigError) -> None:
    """Put the server's problems next to the fields they concern; the rest above the form."""
    problems = exc.details.get("errors") if isinstance(exc.details, dict) else None
    if not isinstance(problems, list) or not problems:
        entry.errors.setdefault("form", exc.message)
        return
    for problem in problems:
        where = str(problem.get("field", ""))
        rule = str(problem.get("rule", ""))
        message = str(problem.get("message", exc.message))
        if where == "value":
            name = entry.value_field
        elif where == "validation_schema" and rule in SCHEMA_FIELDS:
            name = rule
        elif where in ("key", "value_type"):
            name = where
        else:
            name = "form"
        if name in entry.errors:
            entry.errors[name] += f" {message[0].upper()}{message[1:]}."
        else:
            entry.errors[name] = f"{message[0].upper()}{message[1:]}."


def place_schema_errors(entry: EntryForm, exc: ValidationError) -> None:
    """Pydantic's complaints about the request (a key's shape, a description's length)."""
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        name = name if name in ("key", "description", "message") else "form"
        message = KEY_RULES if name == "key" else str(error["msg"])
        entry.errors.setdefault(name, message)
