"""Every model, imported once so the metadata (and Alembic) sees all tables."""

from konfig.audit.models import AuditEvent
from konfig.auth.models import AuthSession
from konfig.configs.models import ConfigEntry
from konfig.db.base import Base
from konfig.namespaces.models import Namespace
from konfig.revisions.models import EntryVersion, Revision
from konfig.tenants.models import Tenant
from konfig.tokens.models import ApiToken, ServiceAccount
from konfig.users.models import User

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuthSession",
    "Base",
    "ConfigEntry",
    "EntryVersion",
    "Namespace",
    "Revision",
    "ServiceAccount",
    "Tenant",
    "User",
]
