"""The YAML mirror: after each commit, ``<dir>/<tenant>/<namespace path>.yaml`` holds the
namespace's entries in document shape, secret entries left out.

A file is replaced atomically (a temporary file in the same directory, then ``os.replace``), so a
reader sees the old file or the new one, never half of one. The hook runs after the commit and
never fails the request: a write that fails is logged and retried by the next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.db.session import bind_tenant, open_session
from konfig.namespaces import repository as namespaces
from konfig.namespaces.models import Namespace
from konfig.revisions import formats
from konfig.revisions.exports import namespace_entries
from konfig.revisions.writer import Committed, WritePolicy
from konfig.tenants import repository as tenants

log = logging.getLogger("konfig.mirror")


def mirror_path(root: Path, tenant: str, namespace: str) -> Path:
    """Where a namespace's file lives; names are validated paths, checked again here."""
    path = (root / tenant / f"{namespace}.yaml").resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"{tenant}/{namespace} would be written outside {root}")
    return path


def write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


async def render(
    session: AsyncSession, *, policy: WritePolicy, tenant: str, namespace: Namespace
) -> bytes:
    found = await namespace_entries(
        session,
        policy=policy,
        namespace=namespace,
        revision=namespace.revision,
        reveal=True,
        with_secrets=False,
    )
    header = (
        f"# konfig mirror of {tenant}/{namespace.name} at revision {namespace.revision}; "
        "secret entries are left out\n"
    )
    body = {"entries": [e.as_document_entry() for e in found]}
    return header.encode() + formats.dump_structured(body, "yaml")


class Mirror:
    """A commit hook (``AppState.commit_hooks``) that keeps the YAML tree up to date."""

    def __init__(
        self,
        root: Path,
        sessionmaker: async_sessionmaker[AsyncSession],
        policy: WritePolicy,
    ) -> None:
        self.root = root
        self.sessionmaker = sessionmaker
        self.policy = policy
        self.locks: dict[uuid.UUID, asyncio.Lock] = {}
        self.written: dict[uuid.UUID, int] = {}

    async def __call__(self, committed: Sequence[Committed]) -> None:
        latest = {c.namespace_id: c for c in committed}
        for change in latest.values():
            try:
                await self.write(change.tenant_id, change.namespace_id)
            except Exception as exc:  # the commit is durable; the next one writes the file again
                reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
                log.warning("could not mirror namespace %s: %s", change.namespace_name, reason)

    async def write(self, tenant_id: uuid.UUID, namespace_id: uuid.UUID) -> Path | None:
        """Write the namespace's latest state (read under a per-namespace lock, so the last
        writer always writes the newest revision)."""
        lock = self.locks.setdefault(namespace_id, asyncio.Lock())
        async with lock:
            session = await open_session(self.sessionmaker, write=False)
            try:
                await bind_tenant(session, tenant_id)
                tenant = await tenants.get(session, tenant_id=tenant_id)
                namespace = await namespaces.get(
                    session, tenant_id=tenant_id, namespace_id=namespace_id
                )
                if tenant is None or namespace is None:
                    return None
                if self.written.get(namespace_id, -1) >= namespace.revision:
                    return None
                content = await render(
                    session, policy=self.policy, tenant=tenant.name, namespace=namespace
                )
            finally:
                await session.close()
            path = mirror_path(self.root, tenant.name, namespace.name)
            await asyncio.to_thread(write_atomically, path, content)
            self.written[namespace_id] = namespace.revision
            return path
