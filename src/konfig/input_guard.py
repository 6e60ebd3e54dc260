"""Hostile input refused with a 422 before it can do harm.

Three kinds, refused wherever a request brings text in:

- JSON nested deeper than any Konfig body needs: the standard library's parser recurses once a
  level, and a million ``[`` exhaust the interpreter's stack. ``nests_deeper`` measures the depth
  by one linear scan of the raw bytes (strings skipped, escapes honoured) before anything parses.
- A NUL character (``\\u0000``): PostgreSQL refuses it in text, so it is refused on every
  database alike. Config values are the exception: they are encrypted at rest and round-trip
  whole, NUL included.
- A lone surrogate (``"\\ud800"``): JSON can spell it, but no UTF-8 can carry it.

``GuardedRoute`` applies all three to the API's routes: their query and path parameters, and
their JSON bodies. A refused body (malformed JSON too) is set aside rather than refused on the
spot, so that the route's dependencies (authentication first) still answer before it: an
unauthenticated request gets its 401 whatever its body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from itertools import accumulate
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from konfig.errors import ValidationFailed, field_path
from konfig.state import state_of

# How many levels a request body may nest beyond a value's own limit (KONFIG_MAX_JSON_DEPTH):
# the envelope around a value (an entry, a document's list of entries) takes a few.
ENVELOPE_DEPTH = 16


def holds_value(where: tuple[str, ...]) -> bool:
    """Whether a body field is a config value (an entry's, or a document entry's): stored
    encrypted, so a NUL in it round-trips."""
    return where[-1] == "value" and (len(where) == 2 or where[-3] == "entries")


# A JSON string, or what is left of an unterminated one: it always matches once it starts, so
# the scan stays linear whatever the input.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def nests_deeper(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays and objects more than ``limit`` levels deep."""
    if body.count(b"[") + body.count(b"{") <= limit:  # the common case: nothing to scan
        return False
    steps = _STRING.sub(b"", body).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def depth_refusal(limit: int, where: str = "body") -> ValidationFailed:
    message = f"{where}: JSON nests deeper than the limit of {limit} levels"
    return _refusal([where], message, "json_depth")


def body_limit(max_json_depth: int) -> int:
    """How deep a request body may nest: a value's limit and its envelope."""
    return max_json_depth + ENVELOPE_DEPTH


def bad_text(
    document: Any, *, exempt: Callable[[tuple[str, ...]], bool] = holds_value
) -> ValidationFailed | None:
    """The refusal for the first NUL or lone surrogate in a parsed JSON body, naming where it
    is; None when its text is clean. Text where ``exempt`` says may hold NUL."""
    root = ("body",)
    pending: list[tuple[Any, tuple[str, ...], bool]] = [(document, root, False)]
    while pending:
        node, where, nul_allowed = pending.pop()
        if isinstance(node, str):
            refused = text_refusal(node, list(where), nul_allowed=nul_allowed)
            if refused is not None:
                return refused
        elif isinstance(node, dict):
            for key, child in node.items():
                refused = text_refusal(key, [*where, key], nul_allowed=nul_allowed)
                if refused is not None:
                    return refused
                pending.append((child, (*where, key), nul_allowed or exempt((*where, key))))
        elif isinstance(node, list):
            pending.extend((child, (*where, str(i)), nul_allowed) for i, child in enumerate(node))
    return None


def text_refusal(
    text: str, where: list[str], *, nul_allowed: bool = False
) -> ValidationFailed | None:
    """The refusal for one piece of text, or None when it is clean."""
    if not nul_allowed and "\x00" in text:
        return _refusal(where, "must not contain a NUL character (\\u0000)", "nul_character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        surrogate = f"\\u{ord(text[exc.start]):04x}"
        message = f"contains a lone surrogate ({surrogate}): not valid Unicode text"
        return _refusal(where, message, "lone_surrogate")
    return None


MESSAGE_LIMIT = 1000  # characters of X-Konfig-Message


def decode_message(raw: bytes) -> str:
    """``X-Konfig-Message`` as sent: HTTP hands headers over as bytes, and Konfig reads them as
    UTF-8 (ASCII among it), not Latin-1 as ASGI servers do."""
    where = ["header", "X-Konfig-Message"]
    try:
        message = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refusal(where, "is not valid UTF-8 text", "utf8") from None
    refused = text_refusal(message, where)
    if refused is not None:
        raise refused
    if len(message) > MESSAGE_LIMIT:
        raise _refusal(
            where, f"String should have at most {MESSAGE_LIMIT} characters", "string_too_long"
        )
    return message


def json_refusal(body: bytes | str, exc: json.JSONDecodeError) -> ValidationFailed:
    """The one refusal of a malformed JSON body, wherever it is parsed: what is wrong, and the
    line and column where. Worded by the standard library's parser whichever parser failed
    (orjson's errors are ``json.JSONDecodeError`` too, in other words)."""
    try:
        json.loads(body)
    except json.JSONDecodeError as plain:
        exc = plain
    except (ValueError, RecursionError):  # what only orjson refuses: its own words
        pass
    where = f"line {exc.lineno}, column {exc.colno}"
    message = f"the body is not valid JSON: {exc.msg} ({where})"
    errors = [{"loc": ["body"], "msg": message, "type": "json_invalid"}]
    details = {"rule": "json", "line": exc.lineno, "column": exc.colno, "errors": errors}
    return ValidationFailed(message, details)


def match_tags(if_match: str) -> list[str]:
    """The entity tags an ``If-Match`` names, weak or strong alike. A bare version (``If-Match:
    1``, as people type it) reads as the tag ``"1"`` it means, rather than matching nothing."""
    tags = [tag.strip().removeprefix("W/") for tag in if_match.split(",")]
    return [tag if tag == "*" or tag.startswith('"') else f'"{tag}"' for tag in tags if tag]


def _refusal(where: list[str], message: str, kind: str) -> ValidationFailed:
    named = field_path(where)
    shown = f"{named}: {message}" if named else message
    errors = [{"loc": list(where), "msg": message, "type": kind}]
    return ValidationFailed(shown, {"errors": errors})


def refuse_bad_parameters(
    query: Iterable[tuple[str, str]], path: Mapping[str, Any] | None = None
) -> None:
    """Refuse a NUL or lone surrogate in a request's query or path parameters."""
    for name, value in query:
        refused = text_refusal(name, ["query", name]) or text_refusal(value, ["query", name])
        if refused is not None:
            raise refused
    for name, value in (path or {}).items():
        if isinstance(value, str) and (refused := text_refusal(value, ["path", name])):
            raise refused


def refuse_bad_form(fields: Iterable[tuple[str, Any]], *, values: str = "value_") -> None:
    """Refuse a NUL or lone surrogate in a form's text; fields named ``values…`` hold config
    values, and may hold NUL."""
    for name, value in fields:
        if isinstance(value, str):
            nul_allowed = name.startswith(values)
            refused = text_refusal(value, ["form", name], nul_allowed=nul_allowed)
            if refused is not None:
                raise refused


class NotJson(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's parser reads them, JSON has no such thing
    (and a value holding one would be stored as null)."""


def _no_constant(constant: str) -> Any:
    raise NotJson(f"{constant} is not JSON: send a number or null")


def load_json(body: bytes | str) -> Any:
    """A JSON text parsed as FastAPI parses it (integers of any size kept exact), without the
    non-standard constants."""
    return json.loads(body, parse_constant=_no_constant)


# What a refused body reads as, so that the route's dependencies run before it is refused. A
# bare object: no body schema accepts it, even reading attributes (``GuardedRoute`` checks).
SET_ASIDE = object()


class GuardedRequest(Request):
    """A request whose JSON body is checked before it is parsed, and whose text after."""

    refusal: ValidationFailed | None = None

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = self._checked(await self.body())
        return self._json

    def _checked(self, body: bytes) -> Any:
        limit = body_limit(state_of(self).settings.max_json_depth)
        if nests_deeper(body, limit):
            self.refusal = depth_refusal(limit)
            return SET_ASIDE
        try:
            document = load_json(body)
        except json.JSONDecodeError as exc:
            self.refusal = json_refusal(body, exc)
            return SET_ASIDE
        except UnicodeDecodeError:
            self.refusal = _refusal(["body"], "body is not valid UTF-8", "utf8")
            return SET_ASIDE
        except NotJson as exc:
            self.refusal = _refusal(["body"], str(exc), "json_constant")
            return SET_ASIDE
        self.refusal = bad_text(document)
        return SET_ASIDE if self.refusal is not None else document


class GuardedRoute(APIRoute):
    """An API route that refuses hostile input (see the module's docstring) with a 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        # A refused body is set aside only where the body's schema is sure to refuse it too.
        defer = self.body_field is None or bool(self.body_field.validate(SET_ASIDE)[1])

        async def guarded(request: Request) -> Response:
            refuse_bad_parameters(request.query_params.multi_items(), request.path_params)
            checked = GuardedRequest(request.scope, request.receive)
            if not defer and "json" in request.headers.get("content-type", ""):
                await checked.json()
                if checked.refusal is not None:
                    raise checked.refusal
            try:
                return await handler(checked)
            except RequestValidationError:
                if checked.refusal is not None:
                    raise checked.refusal from None
                raise

        return guarded
