"""``AsyncKonfig``: the asyncio client, the same surface as ``Konfig`` with ``await``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import uuid
from collections.abc import AsyncIterable, Callable
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import httpx

from konfig.client import _operations as ops
from konfig.client._base import (
    USER_AGENT,
    Call,
    Flow,
    RetryPolicy,
    backoff,
    build_request,
    check,
    may_retry,
    unreachable,
)
from konfig.client._cache import LastKnownGood
from konfig.client._exceptions import ConnectionError, RateLimited, ServerError

T = TypeVar("T")
log = logging.getLogger("konfig.client")
NamespaceRef = str | uuid.UUID
TextFormat = Literal["yaml", "env", "properties"]
# Aliases, because the groups' own ``list`` methods shadow the builtin in their bodies.
Items = list[dict[str, Any]]
Names = list[str]
Entry = dict[str, Any]


class AsyncKonfig:
    """An asyncio Konfig client; ``transport=httpx.ASGITransport(app)`` runs it in-process."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self.cache = LastKnownGood(cache_path) if cache_path is not None else None
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self.auth = AsyncAuth(self)
        self.namespaces = AsyncNamespaces(self)
        self.configs = AsyncConfigs(self)
        self.revisions = AsyncRevisions(self)
        self.backups = AsyncBackups(self)
        self.audit = AsyncAudit(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncKonfig:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 1
        while True:
            request = build_request(self._http, call, self.token)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                if attempt < self.retry.attempts and may_retry(call, response=None):
                    await asyncio.sleep(self.retry.pause(attempt))
                    attempt += 1
                    continue
                raise unreachable(exc, self.url) from exc
            if attempt < self.retry.attempts and may_retry(call, response=response):
                await response.aclose()
                await asyncio.sleep(self.retry.pause(attempt))
                attempt += 1
                continue
            return check(response)

    async def _run(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._send(call))
        except StopIteration as stop:
            return cast(T, stop.value)

    @overload
    async def get_config(
        self, name: str, *, format: Literal["json"] = "json"
    ) -> dict[str, Any]: ...
    @overload
    async def get_config(self, name: str, *, format: TextFormat) -> str: ...
    async def get_config(self, name: str, *, format: str = "json") -> Any:
        """The resolved config of namespace ``name``: a dict for json, text for the others."""
        try:
            resolved = await self._run(ops.read_resolved(name, format=format))
        except (ConnectionError, ServerError) as exc:
            cached = self.cache.fallback(name, format, exc) if self.cache else None
            if cached is None:
                raise
            return cached.value
        if self.cache is not None:
            self.cache.put(name, format, resolved.value, resolved.etag)
        return resolved.value

    async def watch(
        self,
        name: str,
        callback: Callable[[Any], object],
        *,
        format: str = "json",
        wait: float = 30.0,
        initial: bool = True,
    ) -> None:
        """Call ``callback(config)`` now (unless ``initial`` is false) and on every change.

        Runs until cancelled, following changes by long poll; reconnects after network and
        server errors with jittered exponential backoff, resuming from the last ETag it saw.
        ``callback`` may be a coroutine function.
        """
        etag: str | None = None
        failures = 0
        while True:
            try:
                resolved = await self._run(
                    ops.read_resolved(name, format=format, etag=etag, wait=wait if etag else None)
                )
            except (ConnectionError, ServerError, RateLimited) as exc:
                failures += 1
                pause = backoff(failures)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    pause = max(pause, exc.retry_after)
                log.warning("watching %s: %s; reconnecting in %.1fs", name, exc, pause)
                await asyncio.sleep(pause)
                continue
            failures = 0
            if not resolved.changed:
                continue
            first = etag is None
            etag = resolved.etag
            if self.cache is not None:
                self.cache.put(name, format, resolved.value, resolved.etag)
            if initial or not first:
                outcome = callback(resolved.value)
                if inspect.isawaitable(outcome):
                    await outcome


class _Group:
    def __init__(self, client: AsyncKonfig) -> None:
        self._client = client

    async def _run(self, flow: Flow[T]) -> T:
        return await self._client._run(flow)


class AsyncAuth(_Group):
    """Register, log in and out; ``login`` keeps the access token on the client."""

    async def register(self, name: str, email: str, password: str) -> dict[str, Any]:
        """Create a tenant and its owner."""
        return await self._run(ops.register(name, email, password))

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """Exchange email and password for a token pair, and use its access token from now on."""
        tokens = await self._run(ops.login(email, password))
        self._client.token = tokens["access_token"]
        return tokens

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Spend a refresh token for a new pair, and use its access token from now on."""
        tokens = await self._run(ops.refresh(refresh_token))
        self._client.token = tokens["access_token"]
        return tokens

    async def logout(self) -> None:
        """End this login."""
        await self._run(ops.logout())
        self._client.token = None

    async def me(self) -> dict[str, Any]:
        """Who the token belongs to."""
        return await self._run(ops.me())


class AsyncNamespaces(_Group):
    """Namespaces, by name (``payments/production``)."""

    async def list(self, prefix: str | None = None) -> Items:
        """Every namespace, or those whose name starts with ``prefix``."""
        return await self._run(ops.list_namespaces(prefix))

    async def get(self, namespace: NamespaceRef) -> dict[str, Any]:
        """One namespace, with its revision and entry count."""
        return await self._run(ops.get_namespace(namespace))

    async def id(self, namespace: NamespaceRef) -> str:
        """The id of the namespace with this exact name."""
        return await self._run(ops.namespace_id(namespace))

    async def create(
        self, name: str, *, description: str = "", includes: Names | None = None
    ) -> dict[str, Any]:
        """Create a namespace."""
        return await self._run(ops.create_namespace(name, description, includes))

    async def update(
        self,
        namespace: NamespaceRef,
        *,
        description: str | None = None,
        includes: Names | None = None,
    ) -> dict[str, Any]:
        """Change a namespace's description or includes."""
        return await self._run(
            ops.update_namespace(namespace, description=description, includes=includes)
        )

    async def delete(self, namespace: NamespaceRef, *, force: bool = False) -> None:
        """Delete a namespace; ``force`` also deletes the entries it holds."""
        await self._run(ops.delete_namespace(namespace, force=force))


class AsyncConfigs(_Group):
    """A namespace's config entries."""

    async def list(self, namespace: NamespaceRef, *, reveal: bool = False) -> Items:
        """Every entry of the namespace (secrets masked unless ``reveal``)."""
        return await self._run(ops.list_entries(namespace, reveal=reveal))

    async def get(
        self, namespace: NamespaceRef, key: str, *, reveal: bool = False
    ) -> dict[str, Any]:
        """One entry, with its ``version``."""
        return await self._run(ops.get_entry(namespace, key, reveal=reveal))

    async def set(
        self,
        namespace: NamespaceRef,
        key: str,
        value: Any,
        *,
        value_type: str = "string",
        secret: bool = False,
        description: str = "",
        validation_schema: dict[str, Any] | None = None,
        message: str | None = None,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Create or replace an entry; ``if_match`` (a version ETag) guards against lost updates."""
        return await self._run(
            ops.set_entry(
                namespace,
                key,
                value,
                value_type=value_type,
                secret=secret,
                description=description,
                validation_schema=validation_schema,
                message=message,
                if_match=if_match,
            )
        )

    async def delete(
        self,
        namespace: NamespaceRef,
        key: str,
        *,
        if_match: str | None = None,
        message: str | None = None,
    ) -> None:
        """Delete an entry (its history stays)."""
        await self._run(ops.delete_entry(namespace, key, if_match=if_match, message=message))

    async def history(
        self,
        namespace: NamespaceRef,
        key: str,
        *,
        reveal: bool = False,
        limit: int | None = None,
    ) -> Items:
        """Every version of ``key``, newest first, deletions included."""
        return await self._run(ops.entry_history(namespace, key, reveal=reveal, limit=limit))

    async def rollback(
        self, namespace: NamespaceRef, key: str, version: int, *, message: str | None = None
    ) -> Entry:
        """Write a new version equal to ``version``; a deleted key comes back."""
        return await self._run(ops.rollback_entry(namespace, key, version, message=message))


class AsyncAudit(_Group):
    """The tenant's audit log."""

    async def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        namespace: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
    ) -> Items:
        """Up to ``limit`` events, newest first."""
        return await self._run(
            ops.list_audit(
                actor=actor,
                action=action,
                namespace=namespace,
                since=since,
                until=until,
                limit=limit,
            )
        )


class AsyncRevisions(_Group):
    """A namespace's revisions: snapshots, diffs, rollback, documents, import and export."""

    async def list(self, namespace: NamespaceRef, *, limit: int | None = None) -> Items:
        """Revisions, newest first, with the keys each changed."""
        return await self._run(ops.list_revisions(namespace, limit=limit))

    async def get(self, namespace: NamespaceRef, revision: int, *, reveal: bool = False) -> Entry:
        """The whole namespace as it was at ``revision``."""
        return await self._run(ops.get_revision(namespace, revision, reveal=reveal))

    async def diff(
        self,
        namespace: NamespaceRef,
        from_revision: int,
        to_revision: int | None = None,
        *,
        reveal: bool = False,
    ) -> Entry:
        """Keys added, removed and changed between two revisions (``to``: the latest)."""
        return await self._run(ops.diff(namespace, from_revision, to_revision, reveal=reveal))

    async def rollback(
        self,
        namespace: NamespaceRef,
        revision: int,
        *,
        dry_run: bool = False,
        message: str | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Restore the namespace as it was at ``revision``, as one new revision."""
        return await self._run(
            ops.rollback(namespace, revision, dry_run=dry_run, message=message, if_match=if_match)
        )

    async def document(self, namespace: NamespaceRef, *, reveal: bool = False) -> Entry:
        """Every entry as ``{"entries": [...]}``, the shape ``put_document`` takes."""
        return await self._run(ops.get_document(namespace, reveal=reveal))

    async def put_document(
        self,
        namespace: NamespaceRef,
        document: Entry | str,
        *,
        dry_run: bool = False,
        message: str | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Replace every entry atomically from a document (a dict, or YAML text)."""
        return await self._run(
            ops.put_document(
                namespace, document, dry_run=dry_run, message=message, if_match=if_match
            )
        )

    async def export(
        self,
        namespace: NamespaceRef,
        *,
        format: str = "yaml",
        reveal: bool = False,
        revision: int | None = None,
    ) -> str:
        """The namespace as yaml, json, env or properties text."""
        return await self._run(
            ops.export(namespace, format=format, reveal=reveal, revision=revision)
        )

    async def import_(
        self,
        namespace: NamespaceRef,
        content: bytes | str | AsyncIterable[bytes],
        *,
        format: str = "yaml",
        mode: str = "merge",
        dry_run: bool = False,
        message: str | None = None,
    ) -> Entry:
        """Import a yaml, json, env or properties file as one revision (``mode="replace"``
        also deletes the keys it lacks)."""
        return await self._run(
            ops.import_file(
                namespace, content, format=format, mode=mode, dry_run=dry_run, message=message
            )
        )


class AsyncBackups(_Group):
    """The tenant's backups (admins): take, list, read, download, restore."""

    async def create(self) -> Entry:
        """Back up the tenant's namespaces and entries now."""
        return await self._run(ops.create_backup())

    async def list(self, *, limit: int | None = None) -> Items:
        """Backups, newest first, with whether each one's checksum holds."""
        return await self._run(ops.list_backups(limit=limit))

    async def get(self, backup_id: str) -> Entry:
        """One backup, with the namespaces it holds."""
        return await self._run(ops.get_backup(backup_id))

    async def download(self, backup_id: str) -> bytes:
        """The backup file itself (YAML, values still encrypted)."""
        return await self._run(ops.download_backup(backup_id))

    async def restore(
        self,
        backup_id: str,
        *,
        dry_run: bool = False,
        namespaces: Names | None = None,
        reveal: bool = False,
    ) -> Entry:
        """Restore a backup, one new revision per namespace; ``dry_run`` only shows the diff."""
        return await self._run(
            ops.restore_backup(backup_id, dry_run=dry_run, namespaces=namespaces, reveal=reveal)
        )
