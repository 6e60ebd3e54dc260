"""An env or properties file back into entries.

A flat name is an entry's key, or a json entry's key and the path to one of its leaves
(``DB__POOL__SIZE``, ``db.pool.size``); a line's text takes the type of the entry, or of the
leaf, it replaces. Unknown names become new string keys; a masked secret keeps its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from konfig.configs.schemas import KEY_PATTERN, MASK
from konfig.configs.types import Problem
from konfig.revisions import formats
from konfig.revisions.formats import FlatFormat, FlatLine
from konfig.revisions.states import Builder, State
from konfig.revisions.writer import EntryDraft


def _number(text: str) -> int | float | None:
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", text):
        return int(text)
    if re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", text):
        return float(text)
    return None


def _typed(text: str, value_type: str, schema: dict[str, Any] | None) -> tuple[Any, str | None]:
    """The value a flat line's text stands for under the entry's type, or a problem."""
    if value_type == "number":
        number = _number(text.strip())
        return (number, None) if number is not None else (None, "the value is not a number")
    if value_type == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true", None
        return None, "the value is not true or false"
    if value_type == "select":
        for option in (schema or {}).get("options") or []:
            if formats.leaf_text(option) == text:
                return option, None
        return text, None  # validation names the options
    if value_type == "json":
        try:
            return orjson.loads(text), None
        except orjson.JSONDecodeError:
            return None, "the value is not JSON text"
    return text, None


def _leaf(text: str, current: Any) -> Any:
    """A leaf of a json entry takes the JSON type of the leaf it replaces, else stays a string."""
    if isinstance(current, str) or current is _MISSING:
        return text
    if isinstance(current, bool):
        return text == "true" if text in ("true", "false") else text
    if isinstance(current, int | float):
        number = _number(text)
        return text if number is None else number
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


_MISSING: Any = object()


def _at(value: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    return value


def _put(target: dict[str, Any], path: list[str], leaf: Any) -> None:
    for name in path[:-1]:
        child = target.get(name)
        if not isinstance(child, dict):
            child = target[name] = {}
        target = child
    target[path[-1]] = leaf


def _resolver(
    kind: FlatFormat, current: dict[str, State]
) -> Callable[[str], tuple[str, list[str]] | str]:
    """Flat name to (entry key, field path), or a problem; unknown names are new keys."""
    if kind == "properties":
        by_name: dict[str, list[str]] = {key: [key] for key in current}
        separator, segment, new_field = ".", (lambda s: s), (lambda s: s)
    else:
        by_name = {}
        for key in current:
            by_name.setdefault(formats.env_segment(key), []).append(key)
        separator, segment, new_field = "__", formats.env_segment, str.lower

    def resolve(name: str) -> tuple[str, list[str]] | str:
        exact = by_name.get(name, [])
        if len(exact) > 1:
            return f"is ambiguous: it names the keys {', '.join(sorted(exact))}"
        if exact:
            return exact[0], []
        cuts = [m.start() for m in re.finditer(f"(?={re.escape(separator)})", name)]
        for cut in reversed(cuts):
            owners = [k for k in by_name.get(name[:cut], []) if current[k].value_type == "json"]
            rest = name[cut + len(separator) :]
            if len(owners) == 1 and rest:
                fields = formats.resolve_path(
                    rest, separator, current[owners[0]].value, segment, new_field
                )
                return owners[0], fields
        return name, []

    return resolve


def _entry_from_lines(
    state: State, lines: list[tuple[list[str], FlatLine]], merge: bool
) -> tuple[Any, str | None]:
    if state.value_type != "json":
        last = lines[-1][1]
        if state.is_secret and last.text == MASK:
            return state.value, None
        value, problem = _typed(last.text, state.value_type, state.validation_schema)
        return value, f"line {last.line}: {problem}" if problem else None
    keep = isinstance(state.value, dict) and merge
    built: Any = orjson.loads(orjson.dumps(state.value)) if keep else {}
    for path, line in lines:
        if not path:
            if state.is_secret and line.text == MASK:
                built = orjson.loads(orjson.dumps(state.value))
                continue
            built, problem = _typed(line.text, "json", None)
            if problem:
                return None, f"line {line.line}: {problem}"
            continue
        if not isinstance(built, dict):
            built = {}
        _put(built, path, _leaf(line.text, _at(state.value, path)))
    return built, None


def flat_builder(kind: FlatFormat, lines: list[FlatLine], *, merge: bool) -> Builder:
    def build(current: dict[str, State]) -> tuple[list[EntryDraft], dict[str, list[Problem]]]:
        resolve = _resolver(kind, current)
        problems: dict[str, list[Problem]] = {}
        grouped: dict[str, list[tuple[list[str], FlatLine]]] = {}
        for line in lines:
            found = resolve(line.name)
            if isinstance(found, str):
                problems.setdefault(line.name, []).append(
                    Problem("key", "name", f"line {line.line}: {line.name} {found}")
                )
                continue
            key, path = found
            grouped.setdefault(key, []).append((path, line))
        drafts = []
        for key, found_lines in grouped.items():
            state = current.get(key)
            if state is None:
                if not re.fullmatch(KEY_PATTERN, key):
                    problems.setdefault(key, []).append(
                        Problem(
                            "key",
                            "pattern",
                            f"line {found_lines[-1][1].line}: not a valid key (letters, digits, "
                            "'_', '.', '-', not starting with a digit)",
                        )
                    )
                    continue
                drafts.append(EntryDraft(key, found_lines[-1][1].text))
                continue
            value, problem = _entry_from_lines(state, found_lines, merge)
            if problem:
                problems.setdefault(key, []).append(Problem("value", "type", problem))
                continue
            drafts.append(replace(state, value=value).draft(key))
        return drafts, problems

    return build
