"""Taking, listing and reading backups; admins and above, each tenant only its own."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from konfig import __version__
from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.backups import repository
from konfig.backups.format import (
    BackupDocument,
    BackupEntry,
    BackupNamespace,
    BackupRefused,
    BackupTenant,
    Trigger,
    Verified,
    render,
    verify,
)
from konfig.backups.schemas import BackupDetail, BackupNamespaceSummary, BackupRead
from konfig.backups.status import BackupStatus
from konfig.backups.store import BackupStore, StoredFile, created_at
from konfig.db.base import utcnow
from konfig.errors import KonfigError, NotFound
from konfig.pagination import Page, by_text, paginate
from konfig.revisions.writer import WritePolicy
from konfig.security.crypto import DecryptionError, Keyring
from konfig.users.models import Role

log = logging.getLogger("konfig.backups")

_CACHE_SIZE = 2048


class BackupFailed(KonfigError):
    code, status_code = "INTERNAL", 500


@dataclass
class Backups:
    """What every backup operation needs; one per app (``AppState.backups``) or CLI run."""

    store: BackupStore
    policy: WritePolicy
    keep: int
    status: BackupStatus = field(default_factory=BackupStatus)
    # Verified summaries by (path, size, mtime): listing does not re-read unchanged files.
    _described: OrderedDict[tuple[str, int, int], tuple[uuid.UUID | None, BackupDetail]] = field(
        default_factory=OrderedDict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # worker threads

    @property
    def keyring(self) -> Keyring:
        return self.policy.keyring

    def load(self, stored: StoredFile) -> Verified:
        """Read and verify one file (blocking); ``BackupRefused`` when it cannot be trusted."""
        return verify(stored.path.read_bytes(), self.keyring, backup_id=stored.id)

    def describe(self, stored: StoredFile) -> tuple[uuid.UUID | None, BackupDetail]:
        """The file's summary and the tenant id it holds (None when it cannot be verified)."""
        cache_key = (str(stored.path), stored.size, stored.mtime_ns)
        with self._lock:
            cached = self._described.get(cache_key)
            if cached is not None:
                self._described.move_to_end(cache_key)
                return cached
        # Refusals are not cached: a key added to the keyring later may make the file valid.
        try:
            verified = self.load(stored)
        except BackupRefused as exc:
            return None, _invalid(stored, exc.message)
        except OSError as exc:  # pruned meanwhile, or unreadable
            return None, _invalid(stored, f"the file cannot be read ({exc.strerror})")
        document = verified.document
        found = (
            document.tenant.id,
            summarize(document, stored.id, stored.size, verified.checksum_key_id),
        )
        with self._lock:
            self._described[cache_key] = found
            while len(self._described) > _CACHE_SIZE:
                self._described.popitem(last=False)
        return found


def _invalid(stored: StoredFile, problem: str) -> BackupDetail:
    return BackupDetail(
        id=stored.id,
        created_at=created_at(stored.id),
        trigger=None,
        size_bytes=stored.size,
        namespace_count=None,
        entry_count=None,
        key_ids=[],
        valid=False,
        problem=problem,
        namespaces=[],
    )


def summarize(
    document: BackupDocument, backup_id: str, size: int, checksum_key_id: str
) -> BackupDetail:
    return BackupDetail(
        id=backup_id,
        created_at=document.created_at,
        trigger=document.trigger,
        size_bytes=size,
        namespace_count=document.namespace_count,
        entry_count=document.entry_count,
        key_ids=sorted({*document.key_ids, checksum_key_id}),
        valid=True,
        namespaces=[
            BackupNamespaceSummary(
                name=ns.name,
                description=ns.description,
                includes=ns.includes,
                revision=ns.revision,
                entry_count=len(ns.entries),
            )
            for ns in document.namespaces
        ],
    )


def _key_id(ciphertext: bytes) -> str | None:
    try:
        return Keyring.key_id(ciphertext)
    except DecryptionError:  # a damaged stored value is backed up as it is
        return None


def build_document(
    *,
    tenant_id: uuid.UUID,
    tenant_name: str,
    stored: list[repository.StoredNamespace],
    trigger: Trigger,
    at: datetime,
) -> BackupDocument:
    names = {str(ns.id): ns.name for ns in stored}
    namespaces = [
        BackupNamespace(
            id=ns.id,
            name=ns.name,
            description=ns.description,
            includes=[names[i] for i in ns.include_ids if i in names],
            revision=ns.revision,
            entries=[
                BackupEntry(
                    key=e.key,
                    value_type=e.value_type,
                    validation_schema=e.validation_schema,
                    description=e.description,
                    is_secret=e.is_secret,
                    version=e.version,
                    ciphertext=_b64(e.ciphertext),
                )
                for e in ns.entries
            ],
            template=ns.template,
        )
        for ns in stored
    ]
    key_ids = {_key_id(e.ciphertext) for ns in stored for e in ns.entries}
    return BackupDocument(
        created_at=at,
        trigger=trigger,
        konfig_version=__version__,
        tenant=BackupTenant(id=tenant_id, name=tenant_name),
        key_ids=sorted(k for k in key_ids if k is not None),
        namespace_count=len(namespaces),
        entry_count=sum(len(ns.entries) for ns in namespaces),
        namespaces=namespaces,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def take(
    session: AsyncSession, *, backups: Backups, tenant_id: uuid.UUID, trigger: Trigger
) -> BackupDetail:
    """Snapshot the tenant, write the file, prune to ``keep``; every outcome goes to status."""
    name = await repository.tenant_name(session, tenant_id=tenant_id)
    if name is None:
        raise NotFound(f"no tenant {tenant_id}")
    try:
        stored = await repository.snapshot(session, tenant_id=tenant_id)
        at = utcnow()
        document = build_document(
            tenant_id=tenant_id, tenant_name=name, stored=stored, trigger=trigger, at=at
        )
        backup_id, size, checksum_key_id = await asyncio.to_thread(_write, backups, name, document)
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        backups.status.record_failure(name, trigger=trigger, error=reason)
        log.warning("backup of tenant %s (%s) failed: %s", name, trigger, reason)
        if isinstance(exc, OSError):
            raise BackupFailed(f"the backup could not be written: {reason}") from exc
        raise
    backups.status.record_success(name, backup_id=backup_id, trigger=trigger, at=at)
    log.info("backup %s of tenant %s written (%s, %d bytes)", backup_id, name, trigger, size)
    return summarize(document, backup_id, size, checksum_key_id)


def _write(backups: Backups, tenant: str, document: BackupDocument) -> tuple[str, int, str]:
    content, checksum_key_id = render(document, backups.keyring)
    backup_id = backups.store.write(tenant, document.created_at, content)
    backups.store.prune(tenant, backups.keep)
    return backup_id, len(content), checksum_key_id


async def admin_tenant(session: AsyncSession, principal: Principal) -> str:
    """The caller's tenant name, for an admin (403 otherwise)."""
    principal.require(Role.admin)
    name = await repository.tenant_name(session, tenant_id=principal.tenant_id)
    if name is None:
        raise NotFound("no such tenant")
    return name


async def create(session: AsyncSession, *, backups: Backups, principal: Principal) -> BackupDetail:
    principal.require(Role.admin)
    detail = await take(session, backups=backups, tenant_id=principal.tenant_id, trigger="manual")
    await audit.record(
        session,
        action="backup.create",
        target_type="backup",
        target=detail.id,
        summary={"namespaces": len(detail.namespaces)},
    )
    return detail


def _visible(
    backups: Backups, stored: StoredFile, tenant_id: uuid.UUID | None
) -> BackupDetail | None:
    """The summary, unless the file holds another tenant's data (one renamed into the dir)."""
    owner, detail = backups.describe(stored)
    if tenant_id is not None and owner is not None and owner != tenant_id:
        return None
    return detail


def list_files(
    backups: Backups,
    *,
    tenant: str,
    tenant_id: uuid.UUID | None,
    after: str | None = None,
    limit: int | None = None,
) -> list[BackupDetail]:
    """Newest first, from ``after`` (exclusive); blocking (reads and verifies files)."""
    found: list[BackupDetail] = []
    for stored in backups.store.files(tenant):
        if after is not None and stored.id >= after:
            continue
        detail = _visible(backups, stored, tenant_id)
        if detail is not None:
            found.append(detail)
        if limit is not None and len(found) >= limit:
            break
    return found


async def list_page(
    session: AsyncSession,
    *,
    backups: Backups,
    principal: Principal,
    cursor: str | None,
    limit: int,
) -> Page[BackupRead]:
    tenant = await admin_tenant(session, principal)
    found, next_cursor = await paginate(
        cursor,
        limit,
        read=by_text,
        fetch=lambda after, count: asyncio.to_thread(
            list_files,
            backups,
            tenant=tenant,
            tenant_id=principal.tenant_id,
            after=after,
            limit=count,
        ),
        position=lambda backup: [backup.id],
    )
    items = [BackupRead.model_validate(d.model_dump(exclude={"namespaces"})) for d in found]
    return Page[BackupRead](items=items, next_cursor=next_cursor)


def find(
    backups: Backups, *, tenant: str, tenant_id: uuid.UUID | None, backup_id: str
) -> tuple[StoredFile, BackupDetail]:
    """One backup of the tenant (blocking); another tenant's is simply not found."""
    stored = backups.store.find(tenant, backup_id)
    detail = _visible(backups, stored, tenant_id) if stored is not None else None
    if stored is None or detail is None:
        raise NotFound(f"no backup {backup_id}")
    return stored, detail


async def get(
    session: AsyncSession, *, backups: Backups, principal: Principal, backup_id: str
) -> BackupDetail:
    tenant = await admin_tenant(session, principal)
    _, detail = await asyncio.to_thread(
        find, backups, tenant=tenant, tenant_id=principal.tenant_id, backup_id=backup_id
    )
    return detail


async def download(
    session: AsyncSession, *, backups: Backups, principal: Principal, backup_id: str
) -> bytes:
    tenant = await admin_tenant(session, principal)
    stored, _ = await asyncio.to_thread(
        find, backups, tenant=tenant, tenant_id=principal.tenant_id, backup_id=backup_id
    )
    try:
        return await asyncio.to_thread(stored.path.read_bytes)
    except FileNotFoundError as exc:  # pruned a moment ago
        raise NotFound(f"no backup {backup_id}") from exc
