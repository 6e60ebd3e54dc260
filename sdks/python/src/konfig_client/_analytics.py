"""``Konfig.analytics`` and ``AsyncKonfig.analytics``: who reads what (the server's usage
analytics): a namespace's clients and stale instances, its traffic, its keys' last reads, a
token's use."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from konfig_client._base import Call, Flow
from konfig_client._operations import NamespaceRef, namespace_path

Entry = dict[str, Any]


def clients(namespace: NamespaceRef, window_hours: float) -> Flow[Entry]:
    path = yield from namespace_path(namespace)
    response = yield Call("GET", f"{path}/clients", params={"window_hours": window_hours})
    return response.json()  # type: ignore[no-any-return]


def traffic(namespace: NamespaceRef, period: str) -> Flow[Entry]:
    path = yield from namespace_path(namespace)
    response = yield Call("GET", f"{path}/traffic", params={"period": period})
    return response.json()  # type: ignore[no-any-return]


def key_reads(namespace: NamespaceRef, unread_days: float | None) -> Flow[Entry]:
    path = yield from namespace_path(namespace)
    params = {} if unread_days is None else {"unread_days": unread_days}
    response = yield Call("GET", f"{path}/key-reads", params=params)
    return response.json()  # type: ignore[no-any-return]


def unread_keys(unread_days: float | None) -> Flow[Entry]:
    params = {} if unread_days is None else {"unread_days": unread_days}
    response = yield Call("GET", "/api/v1/keys/unread", params=params)
    return response.json()  # type: ignore[no-any-return]


def token_usage(token_id: str | uuid.UUID, period: str) -> Flow[Entry]:
    response = yield Call("GET", f"/api/v1/tokens/{token_id}/usage", params={"period": period})
    return response.json()  # type: ignore[no-any-return]


class Analytics:
    """Which instance reads which namespace and holds which revision; traffic; unread keys."""

    def __init__(self, run: Callable[[Flow[Any]], Any]) -> None:
        self._run = run

    def clients(self, namespace: NamespaceRef, *, window_hours: float = 24) -> Entry:
        """The namespace's instances, the revision each holds, the stale ones and the headline
        ("27 of 30 instances on revision 18; 3 behind since …")."""
        result: Entry = self._run(clients(namespace, window_hours))
        return result

    def traffic(self, namespace: NamespaceRef, *, period: str = "day") -> Entry:
        """Reads, 304s and pushes of the namespace over the last ``day`` or ``week``."""
        result: Entry = self._run(traffic(namespace, period))
        return result

    def key_reads(self, namespace: NamespaceRef, *, unread_days: float | None = None) -> Entry:
        """The namespace's keys with their last delivery, and which are unread."""
        result: Entry = self._run(key_reads(namespace, unread_days))
        return result

    def unread_keys(self, *, unread_days: float | None = None) -> Entry:
        """Every key of the tenant no resolved read delivered for the unread period."""
        result: Entry = self._run(unread_keys(unread_days))
        return result

    def token_usage(self, token_id: str | uuid.UUID, *, period: str = "day") -> Entry:
        """A token's requests over time, the namespaces it read, when it was last used."""
        result: Entry = self._run(token_usage(token_id, period))
        return result


class AsyncAnalytics:
    """``Analytics`` for ``AsyncKonfig``: the same methods, awaited."""

    def __init__(self, run: Callable[[Flow[Any]], Awaitable[Any]]) -> None:
        self._run = run

    async def clients(self, namespace: NamespaceRef, *, window_hours: float = 24) -> Entry:
        """The namespace's instances, the revision each holds, the stale ones."""
        result: Entry = await self._run(clients(namespace, window_hours))
        return result

    async def traffic(self, namespace: NamespaceRef, *, period: str = "day") -> Entry:
        """Reads, 304s and pushes of the namespace over the last ``day`` or ``week``."""
        result: Entry = await self._run(traffic(namespace, period))
        return result

    async def key_reads(
        self, namespace: NamespaceRef, *, unread_days: float | None = None
    ) -> Entry:
        """The namespace's keys with their last delivery, and which are unread."""
        result: Entry = await self._run(key_reads(namespace, unread_days))
        return result

    async def unread_keys(self, *, unread_days: float | None = None) -> Entry:
        """Every key of the tenant no resolved read delivered for the unread period."""
        result: Entry = await self._run(unread_keys(unread_days))
        return result

    async def token_usage(self, token_id: str | uuid.UUID, *, period: str = "day") -> Entry:
        """A token's requests over time, the namespaces it read, when it was last used."""
        result: Entry = await self._run(token_usage(token_id, period))
        return result
