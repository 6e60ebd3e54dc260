"""What the last backups did, per tenant: for ``/metrics`` (backup age, failures) and operators.

``AppState.backups.status`` is one ``BackupStatus``. A metrics module can read ``tenants`` when
scraped, or append a callable to ``listeners`` to hear of each success and failure as it happens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from konfig.db.base import utcnow

log = logging.getLogger("konfig.backups")


@dataclass(frozen=True, slots=True)
class BackupEvent:
    tenant: str
    outcome: Literal["success", "failure"]
    trigger: str
    at: datetime
    backup_id: str | None = None
    error: str | None = None  # a short reason, never a value or a secret


@dataclass(slots=True)
class TenantBackupStatus:
    last_success_at: datetime | None = None  # when the newest backup this process made was taken
    last_backup_id: str | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    successes: int = 0
    failures: int = 0


@dataclass
class BackupStatus:
    tenants: dict[str, TenantBackupStatus] = field(default_factory=dict)
    listeners: list[Callable[[BackupEvent], None]] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Failed backups since the process started, every tenant together."""
        return sum(t.failures for t in self.tenants.values())

    def record_success(self, tenant: str, *, backup_id: str, trigger: str, at: datetime) -> None:
        state = self.tenants.setdefault(tenant, TenantBackupStatus())
        state.last_success_at, state.last_backup_id = at, backup_id
        state.successes += 1
        self._tell(BackupEvent(tenant, "success", trigger, at, backup_id=backup_id))

    def record_failure(self, tenant: str, *, trigger: str, error: str) -> None:
        state = self.tenants.setdefault(tenant, TenantBackupStatus())
        state.last_failure_at, state.last_error = utcnow(), error
        state.failures += 1
        self._tell(BackupEvent(tenant, "failure", trigger, state.last_failure_at, error=error))

    def _tell(self, event: BackupEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not fail the backup
                log.exception("backup status listener failed")
