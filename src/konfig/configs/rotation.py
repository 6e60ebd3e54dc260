"""Key rotation: add a key and re-encrypt every stored value under it, while servers keep serving.

Each value is rewritten with a compare-and-swap on its old ciphertext, so a value a server
changes in the meantime is never overwritten with an older one; it is picked up by the scan or
was already written under the new key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from konfig.configs.models import ConfigEntry
from konfig.db.session import WRITE_OPTION, connection_across_tenants
from konfig.revisions.models import EntryVersion
from konfig.security.crypto import (
    KEYRING_FILE,
    Keyring,
    associated_data,
    new_key_line,
    parse_keys,
    write_keyring_file,
)
from konfig.settings import Settings
from konfig.sso.models import SsoConfig
from konfig.sso.service import secret_aad

Progress = Callable[[str, int, int], None]


@dataclass
class RotationReport:
    primary: str
    added: bool
    rewritten: int = 0
    already_current: int = 0
    skipped_changed: int = 0


def prepare_keyring(settings: Settings) -> tuple[Keyring, bool]:
    """The keyring to rotate to: a new key prepended to the development key file, or
    (``KONFIG_ENCRYPTION_KEYS``) the keys as configured, whose first is the target."""
    if settings.encryption_keys:
        return Keyring(parse_keys(settings.encryption_keys)), False
    path = settings.data_dir / KEYRING_FILE
    lines = (
        [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
    write_keyring_file(path, [new_key_line(), *lines])
    return Keyring(parse_keys(path.read_text()), path=path), True


async def reencrypt(
    engine: AsyncEngine,
    keyring: Keyring,
    report: RotationReport,
    progress: Progress,
    batch: int = 500,
) -> None:
    primary = keyring.primary
    for model in (ConfigEntry, EntryVersion):
        table: Table = model.__table__  # type: ignore[assignment]
        last_id = None
        done = 0
        while True:
            query = (
                select(
                    table.c.id,
                    table.c.tenant_id,
                    table.c.namespace_id,
                    table.c.key,
                    table.c.value_ciphertext,
                )
                .where(table.c.value_ciphertext.is_not(None))
                .order_by(table.c.id)
                .limit(batch)
            )
            if last_id is not None:
                query = query.where(table.c.id > last_id)
            async with engine.connect() as plain:
                # A writer from the start (SQLite: BEGIN IMMEDIATE), like every request that writes.
                conn = await plain.execution_options(**{WRITE_OPTION: True})
                await conn.begin()
                # Every tenant's values, each re-encrypted under its own tenant's associated data.
                await connection_across_tenants(conn, "key rotation: every tenant's values")
                rows = (await conn.execute(query)).all()
                for row_id, tenant_id, namespace_id, key, ciphertext in rows:
                    if Keyring.key_id(ciphertext) == primary:
                        report.already_current += 1
                        continue
                    aad = associated_data(tenant_id, namespace_id, key)
                    fresh = keyring.encrypt(keyring.decrypt(ciphertext, aad), aad)
                    swapped = await conn.execute(
                        update(table)
                        .where(table.c.id == row_id, table.c.value_ciphertext == ciphertext)
                        .values(value_ciphertext=fresh)
                    )
                    if swapped.rowcount == 1:
                        report.rewritten += 1
                    else:
                        report.skipped_changed += 1
                await conn.commit()
            if not rows:
                break
            last_id = rows[-1][0]
            done += len(rows)
            progress(table.name, done, len(rows))
            await asyncio.sleep(0)  # let a shared event loop breathe between batches
    await _reencrypt_sso_secrets(engine, keyring, report)


async def _reencrypt_sso_secrets(
    engine: AsyncEngine, keyring: Keyring, report: RotationReport
) -> None:
    """The tenants' single sign-on client secrets, encrypted with the same keyring (few rows:
    one transaction)."""
    table: Table = SsoConfig.__table__  # type: ignore[assignment]
    async with engine.connect() as plain:
        conn = await plain.execution_options(**{WRITE_OPTION: True})
        await conn.begin()
        await connection_across_tenants(conn, "key rotation: every tenant's SSO client secret")
        query = select(table.c.id, table.c.tenant_id, table.c.client_secret_ciphertext)
        for row_id, tenant_id, ciphertext in (await conn.execute(query)).all():
            if Keyring.key_id(ciphertext) == keyring.primary:
                report.already_current += 1
                continue
            aad = secret_aad(tenant_id)
            swapped = await conn.execute(
                update(table)
                .where(table.c.id == row_id, table.c.client_secret_ciphertext == ciphertext)
                .values(
                    client_secret_ciphertext=keyring.encrypt(keyring.decrypt(ciphertext, aad), aad)
                )
            )
            if swapped.rowcount == 1:
                report.rewritten += 1
            else:
                report.skipped_changed += 1
        await conn.commit()
