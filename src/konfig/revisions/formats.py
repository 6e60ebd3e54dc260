"""Document formats: JSON and YAML bodies, and the flat env and properties files.

YAML is read from the event stream of PyYAML's safe (libyaml) parser rather than through
``yaml.safe_load``: safe_load's C composer recurses once per nesting level and crashes the
process on a deeply nested body, and its generic constructor is slow on large documents. The
events are turned into plain JSON data here, with PyYAML's own resolver and safe scalar
constructors, so scalars mean exactly what they mean to safe_load; anything that is not plain
JSON data (dates, binary, sets, aliases, non-string keys, python tags) is refused.

Flat formats (the rules are in the README, "Import and export"):
- properties: ``feature_flags.new_ui=true``: a json entry holding an object is written one line
  per leaf, the path joined with '.'; java-properties escaping.
- env: ``FEATURE_FLAGS__NEW_UI=true``: each segment uppercased with every character other than
  A-Z and 0-9 as '_', segments joined with '__'; values double-quoted when not plain.
Strings are written as they are; numbers, booleans and null as JSON; arrays, empty objects and
json values that are not objects as JSON text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from konfig.errors import KonfigError, ValidationFailed
from konfig.input_guard import bad_text, json_refusal

StructuredFormat = Literal["json", "yaml"]
FlatFormat = Literal["env", "properties"]
Format = Literal["yaml", "json", "env", "properties"]

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "yaml": "application/yaml",
    "env": "text/plain; charset=utf-8",
    "properties": "text/plain; charset=utf-8",
}
YAML_MEDIA_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})
MAX_DEPTH = 100  # nesting of a whole document; values are held to KONFIG_MAX_JSON_DEPTH later

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR = "tag:yaml.org,2002:str"
_TAGS_OF_COLLECTIONS = {None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


class UnsupportedMediaType(KonfigError):
    code, status_code = "UNSUPPORTED_MEDIA_TYPE", 415


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def structured_format(content_type: str | None) -> StructuredFormat:
    """json or yaml from a Content-Type header; anything else is a 415."""
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        return "json"
    if kind in YAML_MEDIA_TYPES:
        return "yaml"
    raise UnsupportedMediaType(
        f"send the document as application/json or application/yaml, not {kind or 'no type'}",
        {"accepted": ["application/json", *sorted(YAML_MEDIA_TYPES)]},
    )


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"the body is not UTF-8 text (byte {exc.start})", {"rule": "encoding"}
        ) from exc


def load_structured(body: bytes, kind: StructuredFormat) -> Any:
    """Plain JSON data from a JSON or YAML body; error messages never quote the body.

    orjson refuses JSON nested over 1024 levels and lone surrogates itself; the text of either
    kind is checked for NUL and lone surrogates after (``konfig.input_guard``).
    """
    if kind == "json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise json_refusal(body, exc) from exc
    else:
        data = load_yaml(decode_text(body))
    refused = bad_text(data)
    if refused is not None:
        raise refused
    return data


def _refuse(message: str, line: int | None) -> ValidationFailed:
    where = f"line {line}: " if line is not None else ""
    return ValidationFailed(f"{where}{message}", {"rule": "yaml", "line": line})


class _YamlBuilder:
    """Plain data from YAML events, one container per stack frame."""

    def __init__(self) -> None:
        self.resolver = Resolver()
        self.constructor = SafeConstructor()
        self.stack: list[tuple[list[Any] | dict[str, Any], list[Any]]] = []
        self.root: Any = None
        self.documents = 0
        self.resolved: dict[str, str] = {}

    def resolve(self, value: str, implicit: tuple[bool, bool]) -> str:
        # Keys repeat in every entry of a document: remember what each plain scalar resolved to.
        if not implicit[0]:
            return _STR
        tag = self.resolved.get(value)
        if tag is None:
            tag = self.resolver.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
            if len(self.resolved) < 4096:
                self.resolved[value] = tag
        return tag

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(event.value, event.implicit)
        if tag == _STR:
            return event.value
        line = event.start_mark.line + 1
        node = yaml.ScalarNode(tag, event.value)
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return self.constructor.construct_yaml_bool(node)
        if tag == "tag:yaml.org,2002:int":
            number = self.constructor.construct_yaml_int(node)
            if not -(2**63) <= number < 2**64:
                raise _refuse("an integer outside the 64-bit range is not supported", line)
            return number
        if tag == "tag:yaml.org,2002:float":
            real = self.constructor.construct_yaml_float(node)
            if not math.isfinite(real):
                raise _refuse("infinity and NaN are not JSON numbers", line)
            return real
        if tag == "tag:yaml.org,2002:timestamp":
            raise _refuse("a date or time is not JSON data: quote it to keep it a string", line)
        if tag == "tag:yaml.org,2002:merge":
            raise _refuse("merge keys (<<) are not supported: write the entries out", line)
        raise _refuse(f"the YAML tag {tag} is not JSON data", line)

    def add(self, value: Any, mark: Any) -> None:
        if not self.stack:
            self.root = value
            return
        container, pending = self.stack[-1]
        if isinstance(container, list):
            container.append(value)
        elif not pending:
            if not isinstance(value, str):
                raise _refuse("mapping keys must be strings", mark.line + 1)
            if value in container:
                raise _refuse("a mapping repeats one of its keys", mark.line + 1)
            pending.append(value)
        else:
            container[pending.pop()] = value

    def open(self, event: Any, container: list[Any] | dict[str, Any]) -> None:
        line = event.start_mark.line + 1
        if event.tag not in _TAGS_OF_COLLECTIONS:
            raise _refuse(f"the YAML tag {event.tag} is not JSON data", line)
        if self.stack and isinstance(self.stack[-1][0], dict) and not self.stack[-1][1]:
            raise _refuse("mapping keys must be strings", line)
        if len(self.stack) >= MAX_DEPTH:
            raise _refuse(f"the document nests deeper than {MAX_DEPTH} levels", line)
        self.add(container, event.start_mark)
        self.stack.append((container, []))

    def feed(self, event: Any) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self.add(self.scalar(event), event.start_mark)
        elif kind is yaml.MappingStartEvent:
            self.open(event, {})
        elif kind is yaml.SequenceStartEvent:
            self.open(event, [])
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self.stack.pop()
        elif kind is yaml.AliasEvent:
            raise _refuse(
                "YAML aliases (*name) are not supported: write the values out",
                event.start_mark.line + 1,
            )
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise _refuse("send one YAML document, not several", event.start_mark.line + 1)


def load_yaml(text: str) -> Any:
    builder = _YamlBuilder()
    parser = _Loader(text)
    try:
        event = parser.get_event()
        while type(event) is not yaml.StreamEndEvent:
            builder.feed(event)
            event = parser.get_event()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _refuse(
            f"not valid YAML: {exc.problem or exc.context or 'syntax error'}",
            mark.line + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise _refuse("not valid YAML", None) from exc
    finally:
        parser.dispose()
    return builder.root


def dump_structured(data: Any, kind: StructuredFormat) -> bytes:
    if kind == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    text: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return text.encode()


# -- flat formats ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlatLine:
    name: str
    text: str
    line: int


def leaf_text(value: Any) -> str:
    """A value as flat text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def flatten(value: Any, value_type: str) -> list[tuple[tuple[str, ...], str]]:
    """(path, text) lines for one entry's value; the path is empty for a single line."""
    if value_type != "json":
        return [((), leaf_text(value))]
    if not (isinstance(value, dict) and value):
        return [((), orjson.dumps(value).decode())]
    lines: list[tuple[tuple[str, ...], str]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for name, child in node.items():
            if isinstance(child, dict) and child:
                walk(child, (*path, name))
            else:
                lines.append(((*path, name), leaf_text(child)))

    walk(value, ())
    return lines


def env_segment(segment: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", segment).upper()


def flat_name(kind: FlatFormat, key: str, path: tuple[str, ...]) -> str:
    if kind == "env":
        return "__".join(env_segment(s) for s in (key, *path))
    return ".".join((key, *path))


_ENV_PLAIN = re.compile(r"[A-Za-z0-9_./:@,+-]+")
_ENV_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "`": "\\`", "\n": "\\n", "\r": "\\r"}
_PROPERTY_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def _env_value(text: str) -> str:
    if _ENV_PLAIN.fullmatch(text):
        return text
    return '"' + "".join(_ENV_ESCAPES.get(c, c) for c in text) + '"'


def _property_text(text: str, *, is_key: bool) -> str:
    out = []
    for i, c in enumerate(text):
        if c in _PROPERTY_ESCAPES:
            out.append(_PROPERTY_ESCAPES[c])
        elif (is_key and c in " =:#!") or (c in " #!" and i == 0):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def render_flat(kind: FlatFormat, lines: list[tuple[str, str]], header: str) -> bytes:
    body = [f"# {header}"]
    for name, text in lines:
        if kind == "env":
            body.append(f"{name}={_env_value(text)}")
        else:
            body.append(f"{_property_text(name, is_key=True)}={_property_text(text, is_key=False)}")
    return ("\n".join(body) + "\n").encode()


def parse_flat(kind: FlatFormat, text: str) -> list[FlatLine]:
    return list(_parse_env(text) if kind == "env" else _parse_properties(text))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


def _flat_error(message: str, line: int) -> ValidationFailed:
    # Never quote the line: it may hold a secret.
    return ValidationFailed(f"line {line}: {message}", {"rule": "syntax", "line": line})


def _parse_env(text: str) -> Iterator[FlatLine]:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, rest = line.partition("=")
        name = name.strip()
        if not sep or not _ENV_NAME.fullmatch(name):
            raise _flat_error("expected NAME=value with a name of letters, digits and '_'", number)
        rest = rest.strip()
        if rest.startswith('"'):
            value, end = _env_double_quoted(rest, number)
            trailer = rest[end:].strip()
        elif rest.startswith("'"):
            end = rest.find("'", 1)
            if end < 0:
                raise _flat_error("a single-quoted value is not closed", number)
            value, trailer = rest[1:end], rest[end + 1 :].strip()
        else:
            value, trailer = re.split(r"\s+#", rest, maxsplit=1)[0].rstrip(), ""
        if trailer and not trailer.startswith("#"):
            raise _flat_error("unexpected text after a quoted value", number)
        yield FlatLine(name, value, number)


def _env_double_quoted(rest: str, number: int) -> tuple[str, int]:
    out, i = [], 1
    while i < len(rest):
        c = rest[i]
        if c == "\\" and i + 1 < len(rest):
            nxt = rest[i + 1]
            out.append(_ENV_UNESCAPES.get(nxt, nxt))
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise _flat_error("a double-quoted value is not closed", number)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Java properties lines: a line ending in an odd number of backslashes continues."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip(" \t\f") if pending else raw
        if not pending:
            start = number
            stripped = line.lstrip(" \t\f")
            if not stripped or stripped[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _property_unescape(text: str, number: int) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                raise _flat_error("a \\u escape needs four hex digits", number)
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append({"n": "\n", "r": "\r", "t": "\t", "f": "\f"}.get(nxt, nxt))
            i += 2
    return "".join(out)


def _parse_properties(text: str) -> Iterator[FlatLine]:
    for number, line in _logical_lines(text):
        line = line.lstrip(" \t\f")
        i = 0
        while i < len(line) and line[i] not in "=: \t\f":
            i += 2 if line[i] == "\\" else 1
        key, rest = line[:i], line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        name = _property_unescape(key, number)
        if not name:
            raise _flat_error("expected name=value", number)
        yield FlatLine(name, _property_unescape(rest, number), number)


def resolve_path(
    rest: str,
    separator: str,
    node: Any,
    segment: Callable[[str], str],
    new_field: Callable[[str], str],
) -> list[str]:
    """Field names for a flat path below an entry, matched against the entry's current value.

    At each level the longest existing field whose flat form starts the rest wins (so field names
    containing the separator survive); an unknown segment becomes a new field.
    """
    fields: list[str] = []
    while rest:
        known = node if isinstance(node, dict) else {}
        best: str | None = None
        for name in known:
            flat = segment(name)
            if (rest == flat or rest.startswith(flat + separator)) and (
                best is None or len(flat) > len(segment(best))
            ):
                best = name
        if best is None:
            head, _, rest = rest.partition(separator)
            fields.append(new_field(head))
            node = None
            continue
        fields.append(best)
        rest = rest[len(segment(best)) + len(separator) :]
        node = known[best]
    return fields
