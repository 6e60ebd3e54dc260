"""The resource groups of ``Konfig``: thin, typed wrappers around the flows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from konfig_client import _operations as ops
from konfig_client import _revision_operations as revision_ops
from konfig_client import _webhook_operations as webhook_ops
from konfig_client._base import Flow
from konfig_client._operations import NamespaceRef

if TYPE_CHECKING:
    from konfig_client._client import Konfig

T = TypeVar("T")
# Aliases, because the groups' own ``list`` methods shadow the builtin in their bodies.
Items = list[dict[str, Any]]
Names = list[str]
Entry = dict[str, Any]


class _Group:
    def __init__(self, client: Konfig) -> None:
        self._client = client

    def _run(self, flow: Flow[T]) -> T:
        return self._client._run(flow)


class Auth(_Group):
    """Register, log in and out; ``login`` keeps the access token on the client."""

    def register(self, name: str, email: str, password: str) -> dict[str, Any]:
        """Create a tenant and its owner."""
        return self._run(ops.register(name, email, password))

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Exchange email and password for a token pair, and use its access token from now on."""
        tokens = self._run(ops.login(email, password))
        self._client.token = tokens["access_token"]
        return tokens

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Spend a refresh token for a new pair, and use its access token from now on."""
        tokens = self._run(ops.refresh(refresh_token))
        self._client.token = tokens["access_token"]
        return tokens

    def logout(self) -> None:
        """End this login."""
        self._run(ops.logout())
        self._client.token = None

    def me(self) -> dict[str, Any]:
        """Who the token belongs to."""
        return self._run(ops.me())


class Namespaces(_Group):
    """Namespaces, by name (``payments/production``)."""

    def list(self, prefix: str | None = None) -> Items:
        """Every namespace, or those whose name starts with ``prefix``."""
        return self._run(ops.list_namespaces(prefix))

    def get(self, namespace: NamespaceRef) -> dict[str, Any]:
        """One namespace, with its revision and entry count."""
        return self._run(ops.get_namespace(namespace))

    def id(self, namespace: NamespaceRef) -> str:
        """The id of the namespace with this exact name."""
        return self._run(ops.namespace_id(namespace))

    def create(
        self, name: str, *, description: str = "", includes: Names | None = None
    ) -> dict[str, Any]:
        """Create a namespace."""
        return self._run(ops.create_namespace(name, description, includes))

    def update(
        self,
        namespace: NamespaceRef,
        *,
        description: str | None = None,
        includes: Names | None = None,
    ) -> dict[str, Any]:
        """Change a namespace's description or includes."""
        return self._run(
            ops.update_namespace(namespace, description=description, includes=includes)
        )

    def delete(self, namespace: NamespaceRef, *, force: bool = False) -> None:
        """Delete a namespace; ``force`` also deletes the entries it holds."""
        self._run(ops.delete_namespace(namespace, force=force))


class Configs(_Group):
    """A namespace's config entries."""

    def list(self, namespace: NamespaceRef, *, reveal: bool = False) -> Items:
        """Every entry of the namespace (secrets masked unless ``reveal``)."""
        return self._run(ops.list_entries(namespace, reveal=reveal))

    def get(self, namespace: NamespaceRef, key: str, *, reveal: bool = False) -> dict[str, Any]:
        """One entry, with its ``version``."""
        return self._run(ops.get_entry(namespace, key, reveal=reveal))

    def set(
        self,
        namespace: NamespaceRef,
        key: str,
        value: Any,
        *,
        value_type: str | None = None,
        secret: bool | None = None,
        description: str | None = None,
        validation_schema: Any = ops.UNSET,
        message: str | None = None,
        if_match: str | None = None,
        bypass_reason: str | None = None,
    ) -> dict[str, Any]:
        """Set an entry's value, creating the entry if need be; settings left out keep theirs
        (a secret stays secret). ``if_match`` (a version ETag) guards against lost updates. On a
        protected namespace the answer is the change request the change went into (``status``
        ``draft``), unless ``bypass_reason`` (admins, soft enforcement) commits it directly."""
        return self._run(
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
                bypass_reason=bypass_reason,
            )
        )

    def update(
        self,
        namespace: NamespaceRef,
        key: str,
        *,
        value: Any = ops.UNSET,
        value_type: str = ops.UNSET,
        validation_schema: dict[str, Any] | None = ops.UNSET,
        description: str = ops.UNSET,
        is_secret: bool = ops.UNSET,
        message: str | None = None,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Change only the fields given of an existing entry (``validation_schema=None`` drops
        the schema); changing type, schema or secret flag needs an admin."""
        fields = {
            "value": value,
            "value_type": value_type,
            "validation_schema": validation_schema,
            "description": description,
            "is_secret": is_secret,
        }
        return self._run(
            ops.update_entry(namespace, key, fields, message=message, if_match=if_match)
        )

    def delete(
        self,
        namespace: NamespaceRef,
        key: str,
        *,
        if_match: str | None = None,
        message: str | None = None,
    ) -> None:
        """Delete an entry (its history stays)."""
        self._run(ops.delete_entry(namespace, key, if_match=if_match, message=message))

    def history(
        self,
        namespace: NamespaceRef,
        key: str,
        *,
        reveal: bool = False,
        limit: int | None = None,
    ) -> Items:
        """Every version of ``key``, newest first, deletions included."""
        return self._run(revision_ops.entry_history(namespace, key, reveal=reveal, limit=limit))

    def rollback(
        self, namespace: NamespaceRef, key: str, version: int, *, message: str | None = None
    ) -> Entry:
        """Write a new version equal to ``version``; a deleted key comes back."""
        return self._run(revision_ops.rollback_entry(namespace, key, version, message=message))


class Audit(_Group):
    """The tenant's audit log."""

    def list(
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
        return self._run(
            ops.list_audit(
                actor=actor,
                action=action,
                namespace=namespace,
                since=since,
                until=until,
                limit=limit,
            )
        )


class Revisions(_Group):
    """A namespace's revisions: snapshots, diffs, rollback, documents, import and export."""

    def list(self, namespace: NamespaceRef, *, limit: int | None = None) -> Items:
        """Revisions, newest first, with the keys each changed."""
        return self._run(revision_ops.list_revisions(namespace, limit=limit))

    def get(self, namespace: NamespaceRef, revision: int, *, reveal: bool = False) -> Entry:
        """The whole namespace as it was at ``revision``."""
        return self._run(revision_ops.get_revision(namespace, revision, reveal=reveal))

    def diff(
        self,
        namespace: NamespaceRef,
        from_revision: int,
        to_revision: int | None = None,
        *,
        reveal: bool = False,
    ) -> Entry:
        """Keys added, removed and changed between two revisions (``to``: the latest)."""
        return self._run(revision_ops.diff(namespace, from_revision, to_revision, reveal=reveal))

    def rollback(
        self,
        namespace: NamespaceRef,
        revision: int,
        *,
        dry_run: bool = False,
        message: str | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Restore the namespace as it was at ``revision``, as one new revision."""
        return self._run(
            revision_ops.rollback(
                namespace, revision, dry_run=dry_run, message=message, if_match=if_match
            )
        )

    def document(self, namespace: NamespaceRef, *, reveal: bool = False) -> Entry:
        """Every entry as ``{"entries": [...]}``, the shape ``put_document`` takes."""
        return self._run(revision_ops.get_document(namespace, reveal=reveal))

    def put_document(
        self,
        namespace: NamespaceRef,
        document: Entry | str,
        *,
        dry_run: bool = False,
        message: str | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Replace every entry atomically from a document (a dict, or YAML text)."""
        return self._run(
            revision_ops.put_document(
                namespace, document, dry_run=dry_run, message=message, if_match=if_match
            )
        )

    def export(
        self,
        namespace: NamespaceRef,
        *,
        format: str = "yaml",
        reveal: bool = False,
        revision: int | None = None,
    ) -> str:
        """The namespace as yaml, json, env or properties text."""
        return self._run(
            revision_ops.export(namespace, format=format, reveal=reveal, revision=revision)
        )

    def import_(
        self,
        namespace: NamespaceRef,
        content: bytes | str | Iterable[bytes],
        *,
        format: str = "yaml",
        mode: str = "merge",
        dry_run: bool = False,
        message: str | None = None,
    ) -> Entry:
        """Import a yaml, json, env or properties file as one revision (``mode="replace"``
        also deletes the keys it lacks)."""
        return self._run(
            revision_ops.import_file(
                namespace, content, format=format, mode=mode, dry_run=dry_run, message=message
            )
        )


class Backups(_Group):
    """The tenant's backups (admins): take, list, read, download, restore."""

    def create(self) -> Entry:
        """Back up the tenant's namespaces and entries now."""
        return self._run(ops.create_backup())

    def list(self, *, limit: int | None = None) -> Items:
        """Backups, newest first, with whether each one's checksum holds."""
        return self._run(ops.list_backups(limit=limit))

    def get(self, backup_id: str) -> Entry:
        """One backup, with the namespaces it holds."""
        return self._run(ops.get_backup(backup_id))

    def download(self, backup_id: str) -> bytes:
        """The backup file itself (YAML, values still encrypted)."""
        return self._run(ops.download_backup(backup_id))

    def restore(
        self,
        backup_id: str,
        *,
        dry_run: bool = False,
        namespaces: Names | None = None,
        reveal: bool = False,
    ) -> Entry:
        """Restore a backup, one new revision per namespace; ``dry_run`` only shows the diff."""
        return self._run(
            ops.restore_backup(backup_id, dry_run=dry_run, namespaces=namespaces, reveal=reveal)
        )


class Tokens(_Group):
    """Service accounts and API tokens (``kfg_…``); a token's secret is shown once."""

    def create(
        self,
        name: str,
        scopes: Items,
        *,
        service_account: str | uuid.UUID | None = None,
        expires_in_days: int | None = None,
        expires_at: str | None = None,
    ) -> Entry:
        """Create a token: ``scopes=[{"namespaces": "payments/*", "permissions": ["read"]}]``
        (add ``"secrets"`` beside ``"read"`` for secret values decrypted, else they read as
        ``********``); the answer's ``token`` is the secret, never shown again."""
        return self._run(
            ops.create_token(
                name,
                scopes,
                service_account=service_account,
                expires_in_days=expires_in_days,
                expires_at=expires_at,
            )
        )

    def list(
        self, *, service_account: str | uuid.UUID | None = None, include_revoked: bool = False
    ) -> Items:
        """Tokens (the tenant's for admins, your own otherwise), never their secrets."""
        return self._run(
            ops.list_tokens(service_account=service_account, include_revoked=include_revoked)
        )

    def get(self, token_id: str | uuid.UUID) -> Entry:
        """One token, with when it was last used."""
        return self._run(ops.get_token(token_id))

    def revoke(self, token_id: str | uuid.UUID) -> None:
        """Revoke a token: every replica refuses it from now on."""
        self._run(ops.revoke_token(token_id))

    def create_service_account(self, name: str, *, description: str = "") -> Entry:
        """Create a service account, a machine identity that owns tokens."""
        return self._run(ops.create_service_account(name, description))

    def list_service_accounts(self) -> Items:
        """The tenant's service accounts by name."""
        return self._run(ops.list_service_accounts())

    def delete_service_account(self, account: str | uuid.UUID) -> None:
        """Delete a service account (by name or id); its tokens stop working."""
        self._run(ops.delete_service_account(account))


class Webhooks(_Group):
    """Webhooks: signed notifications of changes, per Standard Webhooks."""

    def create(
        self,
        url: str,
        events: Names,
        *,
        namespaces: str = "**",
        description: str = "",
        enabled: bool = True,
    ) -> Entry:
        """Subscribe ``url`` to event types (``config.changed``, ``namespace.created``, …) in
        the namespaces a pattern matches; the answer's ``secret`` (``whsec_…``) is shown once."""
        return self._run(
            webhook_ops.create_webhook(
                url, events, namespaces=namespaces, description=description, enabled=enabled
            )
        )

    def list(self) -> Items:
        """The tenant's webhooks (admins)."""
        return self._run(webhook_ops.list_webhooks())

    def get(self, webhook_id: str | uuid.UUID) -> Entry:
        """One webhook."""
        return self._run(webhook_ops.get_webhook(webhook_id))

    def update(self, webhook_id: str | uuid.UUID, **changes: Any) -> Entry:
        """Change ``url``, ``events``, ``namespaces``, ``description`` or ``enabled``."""
        return self._run(webhook_ops.update_webhook(webhook_id, changes))

    def delete(self, webhook_id: str | uuid.UUID) -> None:
        """Delete a webhook and its delivery log."""
        self._run(webhook_ops.delete_webhook(webhook_id))

    def rotate_secret(self, webhook_id: str | uuid.UUID) -> Entry:
        """A new signing secret, shown once; the old one signs beside it for 24 hours."""
        return self._run(webhook_ops.rotate_secret(webhook_id))

    def test(self, webhook_id: str | uuid.UUID) -> Entry:
        """Send a ``webhook.test`` event; answers the queued delivery's id."""
        return self._run(webhook_ops.test_webhook(webhook_id))

    def deliveries(
        self,
        webhook_id: str | uuid.UUID,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> Items:
        """The delivery log, newest first, each with every attempt."""
        return self._run(
            webhook_ops.list_deliveries(
                webhook_id, status=status, since=since, until=until, limit=limit
            )
        )

    def redeliver(self, webhook_id: str | uuid.UUID, delivery_id: str | uuid.UUID) -> Entry:
        """Send a delivery again now, with the same ``webhook-id``."""
        return self._run(webhook_ops.redeliver(webhook_id, delivery_id))
