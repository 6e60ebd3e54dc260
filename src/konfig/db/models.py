"""Every model, imported once so the metadata (and Alembic) sees all tables."""

from konfig.auth.models import AuthSession
from konfig.db.base import Base
from konfig.tenants.models import Tenant
from konfig.users.models import User

__all__ = ["AuthSession", "Base", "Tenant", "User"]
