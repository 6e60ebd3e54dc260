"""The ``users`` and ``sso`` groups of ``Konfig`` and ``AsyncKonfig``."""

from __future__ import annotations

from typing import Any

from konfig_client import _people_operations as ops
from konfig_client._async_resources import _Group as _AsyncGroup
from konfig_client._people_operations import UserRef
from konfig_client._resources import _Group

Grants = list[dict[str, str]]
Entry = dict[str, Any]
Names = list[str]  # an alias: the groups' own ``list`` methods shadow the builtin


class Users(_Group):
    """The tenant's people and their grants (admins): ``{"role", "namespaces"}`` each."""

    def list(self) -> list[Entry]:
        """Every user of the tenant, with their grants."""
        return self._run(ops.list_users())

    def create(
        self,
        email: str,
        password: str,
        *,
        role: str | None = None,
        grants: Grants | None = None,
        full_name: str = "",
    ) -> Entry:
        """Add a user with a ``role`` on every namespace, or with ``grants``
        (``[{"role": "editor", "namespaces": "payments/**"}]``)."""
        return self._run(
            ops.create_user(email, password, role=role, grants=grants, full_name=full_name)
        )

    def get(self, user: UserRef) -> Entry:
        """One user, by email or id."""
        return self._run(ops.get_user(user))

    def set_grants(self, user: UserRef, grants: Grants) -> Entry:
        """Replace a user's grants whole; their logins and tokens follow at once."""
        return self._run(ops.set_grants(user, grants))


class Groups(_Group):
    """Groups: grants their members hold besides their own (admins)."""

    def list(self) -> list[Entry]:
        """The tenant's groups, their grants and members."""
        return self._run(ops.list_groups())

    def create(self, name: str, grants: Grants, *, description: str = "") -> Entry:
        """Make a group with ``grants``."""
        return self._run(ops.create_group(name, grants, description))

    def set_grants(self, group: str, grants: Grants) -> Entry:
        """Replace a group's grants (by name or id); members follow at once."""
        return self._run(ops.set_group_grants(group, grants))

    def delete(self, group: str) -> None:
        """Delete a group; its members lose what it granted."""
        self._run(ops.delete_group(group))

    def set_members_groups(self, user: UserRef, groups: Names) -> Entry:
        """Replace the groups a user (by email or id) belongs to."""
        return self._run(ops.set_groups(user, groups))


class Sso(_Group):
    """The tenant's OpenID provider and claim-to-grant mapping (owners)."""

    def get(self) -> Entry:
        """The settings; the client secret is never answered."""
        return self._run(ops.get_sso())

    def put(self, settings: Entry) -> Entry:
        """Set them: ``issuer``, ``client_id``, ``client_secret``, ``allowed_domains``,
        ``role_mapping``, ``default_grants``, ``strict``, ``password_login``."""
        return self._run(ops.put_sso(settings))


class AsyncUsers(_AsyncGroup):
    """The tenant's people and their grants (admins): ``{"role", "namespaces"}`` each."""

    async def list(self) -> list[Entry]:
        """Every user of the tenant, with their grants."""
        return await self._run(ops.list_users())

    async def create(
        self,
        email: str,
        password: str,
        *,
        role: str | None = None,
        grants: Grants | None = None,
        full_name: str = "",
    ) -> Entry:
        """Add a user with a ``role`` on every namespace, or with ``grants``."""
        return await self._run(
            ops.create_user(email, password, role=role, grants=grants, full_name=full_name)
        )

    async def get(self, user: UserRef) -> Entry:
        """One user, by email or id."""
        return await self._run(ops.get_user(user))

    async def set_grants(self, user: UserRef, grants: Grants) -> Entry:
        """Replace a user's grants whole; their logins and tokens follow at once."""
        return await self._run(ops.set_grants(user, grants))


class AsyncGroups(_AsyncGroup):
    """Groups: grants their members hold besides their own (admins)."""

    async def list(self) -> list[Entry]:
        """The tenant's groups, their grants and members."""
        return await self._run(ops.list_groups())

    async def create(self, name: str, grants: Grants, *, description: str = "") -> Entry:
        """Make a group with ``grants``."""
        return await self._run(ops.create_group(name, grants, description))

    async def set_grants(self, group: str, grants: Grants) -> Entry:
        """Replace a group's grants (by name or id); members follow at once."""
        return await self._run(ops.set_group_grants(group, grants))

    async def delete(self, group: str) -> None:
        """Delete a group; its members lose what it granted."""
        await self._run(ops.delete_group(group))

    async def set_members_groups(self, user: UserRef, groups: Names) -> Entry:
        """Replace the groups a user (by email or id) belongs to."""
        return await self._run(ops.set_groups(user, groups))


class AsyncSso(_AsyncGroup):
    """The tenant's OpenID provider and claim-to-grant mapping (owners)."""

    async def get(self) -> Entry:
        """The settings; the client secret is never answered."""
        return await self._run(ops.get_sso())

    async def put(self, settings: Entry) -> Entry:
        """Set them (see ``Sso.put``)."""
        return await self._run(ops.put_sso(settings))
