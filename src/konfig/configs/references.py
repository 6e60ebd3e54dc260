"""References between values: ``${ref:namespace:key}``, ``${ref:key}``, with a default.

A string value may hold references, expanded on the server when a resolved config is read and
never stored expanded:

- ``${ref:shared/production:db_host}``: the key ``db_host`` of the resolved config of
  ``shared/production`` (so what that namespace inherits counts);
- ``${ref:db_host}``: a key of the resolved config being read (a parent's
  ``url: "postgres://${ref:db_host}/app"`` takes each environment's own ``db_host``);
- ``${ref:…:-fallback}``: the text after ``:-`` (up to the closing brace) when the key is not
  set anywhere the reference looks;
- ``$${``: a literal ``${`` (``$${ref:x}`` reads ``${ref:x}``). Any other ``${…}`` (``${HOME}``)
  is left as it is.

A referenced value that itself holds references is expanded in its own namespace's context,
up to ``MAX_DEPTH`` links; a non-string target is written as JSON text (``50``, ``true``). A
missing target without a default, a cycle or a chain deeper than ``MAX_DEPTH`` is a
``ReferenceProblem`` naming the chain (``a:x → b:y → a:x``): refused at write time, and never
left as literal text in what a service reads.

A value that uses a secret is itself secret: masked for whoever may not see secrets.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from konfig.auth.principal import Principal

MAX_DEPTH = 10
MARK = "${"
_TOKEN = re.compile(r"\$\$\{|\$\{ref:([^}]*)\}")
_BODY = re.compile(
    r"(?:(?P<namespace>[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9][a-z0-9_.-]*)*):)?"
    r"(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,254})"
    r"(?::-(?P<default>.*))?",
    re.S,
)


@dataclass(frozen=True, slots=True)
class Reference:
    namespace: str | None  # None: the resolved config being read
    key: str
    default: str | None
    text: str  # as written, for messages


class ReferenceProblem(Exception):
    """A reference that cannot be expanded: what is wrong and the chain that leads to it."""

    def __init__(self, message: str, chain: list[str], rule: str) -> None:
        super().__init__(message)
        self.message = message
        self.chain = chain
        self.rule = rule


def mentions(value: object) -> bool:
    """Whether ``value`` may hold a reference or an escape (the cheap test every write makes)."""
    return isinstance(value, str) and MARK in value


def parse(text: str) -> list[Reference]:
    """The references ``text`` holds; a malformed ``${ref:…}`` is a ``ReferenceProblem``."""
    found = []
    for match in _TOKEN.finditer(text):
        body = match.group(1)
        if body is None:
            continue
        parsed = _BODY.fullmatch(body)
        if parsed is None:
            raise ReferenceProblem(
                f"{match.group(0)} is not a reference: write ${{ref:namespace:key}}, "
                "${ref:key} or ${ref:key:-default} (and $${ for a literal ${)",
                [match.group(0)],
                "malformed",
            )
        found.append(
            Reference(parsed["namespace"], parsed["key"], parsed["default"], match.group(0))
        )
    return found


def targets(text: str, own: str) -> set[str]:
    """The namespaces ``text``'s references read (``own`` for ``${ref:key}``)."""
    return {ref.namespace or own for ref in parse(text)}


@dataclass(frozen=True, slots=True)
class ReferenceWrite:
    """A write whose values hold references, to check before it commits: the namespace's keys
    as the write leaves them (``values``: the keys it sets, ``deleted``: those it removes)."""

    tenant_id: uuid.UUID
    namespace_id: uuid.UUID
    principal: Principal | None  # None: an operator at the server (a restore)
    values: Mapping[str, Any]
    deleted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NamespaceDrop:
    """A namespace deleted whole, its row already gone in ``session``: every other namespace's
    references must still resolve without it (what it held and passed down to its children)."""

    tenant_id: uuid.UUID
    name: str


# Set by the delivery layer, which resolves: raises ``ValidationFailed`` naming the chain for a
# write, ``Conflict`` naming every referrer for a namespace deleted whole.
ReferenceCheck = Callable[
    ["AsyncSession | None", "ReferenceWrite | NamespaceDrop"], Awaitable[None]
]


@dataclass(frozen=True, slots=True)
class Layered:
    """A namespace's resolved values before expansion, as the expander reads them."""

    values: Mapping[str, Any]
    secrets: frozenset[str]


@dataclass(slots=True)
class Expanded:
    value: Any
    secret: bool = False
    chain: list[str] = field(default_factory=list)  # every ``ns:key`` the value was built from
    namespaces: set[str] = field(default_factory=set)  # other namespaces it read


def _link(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class Expander:
    """Expands the references of values, reading namespaces through ``lookup`` (None: no such
    namespace). Each ``ns:key`` is expanded once."""

    def __init__(self, lookup: Callable[[str], Layered | None]) -> None:
        self.lookup = lookup
        self._done: dict[tuple[str, str], Expanded] = {}

    def key(self, namespace: str, key: str, chain: tuple[str, ...] = ()) -> Expanded | None:
        """The expanded value of ``key`` in ``namespace`` (None: not set there)."""
        layered = self.lookup(namespace)
        if layered is None or key not in layered.values:
            return None
        done = self._done.get((namespace, key))
        if done is not None:
            return done
        link = _link(namespace, key)
        if link in chain:
            cycle = [*chain[chain.index(link) :], link]
            raise ReferenceProblem(
                f"the references make a cycle: {' → '.join(cycle)}", cycle, "cycle"
            )
        if len(chain) > MAX_DEPTH:
            raise ReferenceProblem(
                f"the chain of references is deeper than {MAX_DEPTH}: {' → '.join([*chain, link])}",
                [*chain, link],
                "depth",
            )
        raw = layered.values[key]
        result = Expanded(raw, key in layered.secrets)
        if mentions(raw):
            result = self._text(namespace, raw, (*chain, link), result.secret)
        self._done[(namespace, key)] = result
        return result

    def _text(self, namespace: str, text: str, chain: tuple[str, ...], secret: bool) -> Expanded:
        out: list[str] = []
        result = Expanded("", secret)
        position = 0
        for match in _TOKEN.finditer(text):
            out.append(text[position : match.start()])
            position = match.end()
            if match.group(1) is None:
                out.append(MARK)
                continue
            (ref,) = parse(match.group(0))
            where = ref.namespace or namespace
            if where != namespace:
                result.namespaces.add(where)
                if self.lookup(where) is None and ref.default is None:
                    raise ReferenceProblem(
                        f"{ref.text} in {chain[-1]}: there is no namespace {where} "
                        f"(chain: {' → '.join(chain)})",
                        [*chain, _link(where, ref.key)],
                        "missing",
                    )
            target = self.key(where, ref.key, chain)
            if target is None:
                if ref.default is None:
                    raise ReferenceProblem(
                        f"{ref.text} in {chain[-1]}: {where} has no key {ref.key} and the "
                        "reference gives no default (write ${ref:…:-default} for one); "
                        f"chain: {' → '.join([*chain, _link(where, ref.key)])}",
                        [*chain, _link(where, ref.key)],
                        "missing",
                    )
                out.append(ref.default)
                continue
            out.append(_as_text(target.value))
            result.secret = result.secret or target.secret
            result.chain.extend([_link(where, ref.key), *target.chain])
            result.namespaces |= target.namespaces
        out.append(text[position:])
        result.value = "".join(out)
        result.chain = list(dict.fromkeys(result.chain))
        return result
