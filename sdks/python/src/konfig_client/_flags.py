"""``Konfig.flags`` and ``AsyncKonfig.flags``: feature flags."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from konfig_client import _flag_operations as ops
from konfig_client._base import Flow
from konfig_client._operations import NamespaceRef, set_entry

T = TypeVar("T")
# An alias: the groups' own ``list`` methods shadow the builtin in their bodies.
Items = list[dict[str, Any]]
Entry = dict[str, Any]


class Flags:
    """Evaluate flags as a service does (OFREP), and manage them.

    ``namespace`` may be left out of evaluations when the token is scoped to exactly one
    namespace."""

    def __init__(self, run: Callable[[Flow[Any]], Any]) -> None:
        self._run = run

    def evaluate(
        self, key: str, context: dict[str, Any] | None = None, *, namespace: str | None = None
    ) -> Entry:
        """One flag for ``context`` (with ``targetingKey``): key, value, variant, reason."""
        result: Entry = self._run(ops.evaluate(key, context, namespace))
        return result

    def evaluate_all(
        self, context: dict[str, Any] | None = None, *, namespace: str | None = None
    ) -> Entry:
        """Every flag of the namespace for ``context``: ``{"flags": [...], ...}``."""
        result: Entry = self._run(ops.evaluate_all(context, namespace))
        return result

    def list(self, namespace: NamespaceRef) -> Items:
        """The namespace's flags, with their evaluation counts and staleness."""
        result: Items = self._run(ops.list_flags(namespace))
        return result

    def stale(self) -> Items:
        """Every flag of the tenant (that the token may read) neither changed nor evaluated for
        the server's KONFIG_FLAG_STALE_DAYS."""
        result: Items = self._run(ops.stale_flags())
        return result

    def evaluations(self, namespace: NamespaceRef, key: str, *, hours: int = 24) -> Entry:
        """A flag's evaluations per hour and variant."""
        result: Entry = self._run(ops.evaluations(namespace, key, hours))
        return result

    def set(self, namespace: NamespaceRef, key: str, definition: dict[str, Any]) -> Entry:
        """Write a flag (flagd's shape: state, variants, defaultVariant, targeting, metadata)."""
        result: Entry = self._run(set_entry(namespace, key, definition, value_type="flag"))
        return result

    def enable(self, namespace: NamespaceRef, key: str) -> Entry:
        """Turn the flag on (its targeting applies again)."""
        result: Entry = self._run(ops.set_state(namespace, key, "ENABLED"))
        return result

    def disable(self, namespace: NamespaceRef, key: str) -> Entry:
        """The kill switch: every evaluation answers the default variant, reason DISABLED."""
        result: Entry = self._run(ops.set_state(namespace, key, "DISABLED"))
        return result


class AsyncFlags:
    """``Flags`` for ``AsyncKonfig``: the same methods, awaited."""

    def __init__(self, run: Callable[[Flow[Any]], Awaitable[Any]]) -> None:
        self._run = run

    async def evaluate(
        self, key: str, context: dict[str, Any] | None = None, *, namespace: str | None = None
    ) -> Entry:
        """One flag for ``context`` (with ``targetingKey``): key, value, variant, reason."""
        result: Entry = await self._run(ops.evaluate(key, context, namespace))
        return result

    async def evaluate_all(
        self, context: dict[str, Any] | None = None, *, namespace: str | None = None
    ) -> Entry:
        """Every flag of the namespace for ``context``."""
        result: Entry = await self._run(ops.evaluate_all(context, namespace))
        return result

    async def list(self, namespace: NamespaceRef) -> Items:
        """The namespace's flags, with their evaluation counts and staleness."""
        result: Items = await self._run(ops.list_flags(namespace))
        return result

    async def set(self, namespace: NamespaceRef, key: str, definition: dict[str, Any]) -> Entry:
        """Write a flag."""
        flow = set_entry(namespace, key, definition, value_type="flag")
        result: Entry = await self._run(flow)
        return result

    async def disable(self, namespace: NamespaceRef, key: str) -> Entry:
        """The kill switch."""
        result: Entry = await self._run(ops.set_state(namespace, key, "DISABLED"))
        return result
