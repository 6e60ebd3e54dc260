"""Who may change an entry's rules: its type, its validation schema and its secret flag.

Editors set values within the rules; changing the rules of an existing entry needs an admin
(so an editor cannot raise a ``max_value`` and save a value past the old one in one form).
Creating a new key with rules is an editor's right: there is no rule to loosen yet. API tokens
never hold the admin role, so no token changes rules. Every write path asks here: single-entry
writes (``konfig.configs.writes``), documents, imports and rollbacks.
"""

from __future__ import annotations

from typing import Any, Protocol

from konfig.auth.principal import Principal
from konfig.errors import Forbidden
from konfig.users.models import Role


class Ruled(Protocol):
    """An entry, a draft or a state: anything with an entry's rules."""

    @property
    def value_type(self) -> str: ...
    @property
    def validation_schema(self) -> dict[str, Any] | None: ...
    @property
    def is_secret(self) -> bool: ...


def changed_rules(before: Ruled, after: Ruled) -> list[str]:
    """The rule fields ``after`` changes, compared as the writer compares them."""
    changed = []
    if before.value_type != after.value_type:
        changed.append("value_type")
    if (before.validation_schema or None) != (after.validation_schema or None):
        changed.append("validation_schema")
    if before.is_secret != after.is_secret:
        changed.append("is_secret")
    return changed


def may_change_rules(principal: Principal, namespace: str) -> bool:
    """Admins of the namespace (by their grants) may; tokens never (their ceiling is editor)."""
    if principal.kind == "token":
        return principal.is_superuser or principal.role.at_least(Role.admin)
    held = principal.role_on(namespace)
    return held is not None and held.at_least(Role.admin)


def check_rules(principal: Principal, namespace: str, changes: dict[str, list[str]]) -> None:
    """403 naming the keys and fields when ``changes`` (rule fields by key) is not empty and
    the principal is no admin of the namespace named so."""
    changes = {key: fields for key, fields in changes.items() if fields}
    if not changes or may_change_rules(principal, namespace):
        return
    first, fields = next(iter(changes.items()))
    what = f"the {', '.join(fields)} of {first}"
    if len(changes) > 1:
        what += f" (and the rules of {len(changes) - 1} more key(s))"
    if principal.kind == "token":
        message = f"API tokens cannot change {what}: it needs a user with the admin role"
    else:
        held = principal.role_on(namespace)
        message = (
            f"changing {what} needs the admin role or above on {namespace}; you are "
            f"{held.value if held else 'not granted any role'} there "
            "(editors change values within the rules)"
        )
    raise Forbidden(message, {"target": first, "rule": "admin_required", "keys": changes})
