"""Every feature's models, gathered where the app is assembled, so the metadata is whole.

``metadata`` holds every table: what the database roles are checked against and what Alembic
compares migrations with. It lives here, beside ``app.py``, and not under ``db/``: db/ defines
``Base`` and imports no feature."""

from konfig.analytics.models import ClientInstance, FlagEvaluation, KeyRead, Traffic
from konfig.audit.models import AuditEvent
from konfig.auth.models import AuthSession
from konfig.changes.models import ChangeRequest, ChangeRequestEvent, ProtectionPolicy
from konfig.configs.models import ConfigEntry
from konfig.db.base import Base
from konfig.db.outbox import OutboxEvent
from konfig.groups.models import Group
from konfig.namespaces.models import Namespace
from konfig.revisions.models import EntryVersion, Revision
from konfig.sso.models import SsoConfig, SsoFlow
from konfig.tenants.models import Tenant
from konfig.tokens.models import ApiToken, ServiceAccount
from konfig.users.models import User
from konfig.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

metadata = Base.metadata

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuthSession",
    "Base",
    "ChangeRequest",
    "ChangeRequestEvent",
    "ClientInstance",
    "ConfigEntry",
    "EntryVersion",
    "FlagEvaluation",
    "Group",
    "KeyRead",
    "Namespace",
    "OutboxEvent",
    "ProtectionPolicy",
    "Revision",
    "ServiceAccount",
    "SsoConfig",
    "SsoFlow",
    "Tenant",
    "Traffic",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
