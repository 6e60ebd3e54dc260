from __future__ import annotations

import uuid

from pydantic import EmailStr, TypeAdapter, ValidationError

from konfig.db.engine import make_engine, make_sessionmaker
from konfig.db.migrate import upgrade
from konfig.db.session import across_tenants
from konfig.security.passwords import hash_password
from konfig.settings import Settings
from konfig.tenants import repository as tenants
from konfig.users import repository as users
from konfig.users.models import Role


async def create(settings: Settings, *, email: str, password: str, tenant: str) -> uuid.UUID:
    """Create a superuser (and its tenant if needed) directly in the database."""
    try:
        email = TypeAdapter(EmailStr).validate_python(email)
    except ValidationError as exc:
        raise ValueError(f"{email!r} is not a valid email address") from exc
    if len(password) < 8:
        raise ValueError("the password needs at least 8 characters")
    await upgrade(settings.resolved_migration_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        async with (
            make_sessionmaker(engine)() as session,
            session.begin(),
            across_tenants(session, "create-superuser"),
        ):
            if await users.get_by_email(session, email=email) is not None:
                raise ValueError(f"a user with email {email} already exists")
            found = await tenants.get_by_name(session, name=tenant)
            owner = found or await tenants.create(session, name=tenant)
            user = await users.create(
                session,
                tenant_id=owner.id,
                email=email.lower(),
                password_hash=hash_password(password),
                role=Role.owner,
                is_superuser=True,
            )
            return user.id
    finally:
        await engine.dispose()
