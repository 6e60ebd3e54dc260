"""Grants: a role on the namespaces a pattern matches (``editor`` on ``payments/**``).

A person's access is the union of their grants, read with the pattern language of token
scopes (``konfig.tokens.scopes``). The role a person holds on a namespace is the highest role
of the grants that match its name; ``viewer`` reads, ``editor`` writes and sees secrets,
``admin`` also changes entries' rules and manages namespaces. What concerns the whole tenant
(users, service accounts, the audit log, backups) follows the *tenant role*: the highest role
granted on ``**``. ``owner`` is tenant-wide only. ``allowed`` is the one permission check
every path asks (``konfig.auth.principal.Principal.allows``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from konfig.tokens.scopes import Permission, compile_pattern
from konfig.users.models import Role

EVERYWHERE = "**"
# The least role each permission on a namespace's entries needs.
NEEDED: dict[Permission, Role] = {"read": Role.viewer, "write": Role.editor, "secrets": Role.editor}


@dataclass(frozen=True, slots=True)
class Grant:
    role: Role
    namespaces: str

    def covers(self, namespace: str) -> bool:
        return bool(compile_pattern(self.namespaces).fullmatch(namespace))

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role.value, "namespaces": self.namespaces}


def parse_grants(raw: object) -> tuple[Grant, ...]:
    """Grants as stored (``[{"role": ..., "namespaces": ...}]``); unreadable items are dropped."""
    grants: list[Grant] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        role, pattern = item.get("role"), item.get("namespaces")
        if isinstance(pattern, str) and isinstance(role, str) and role in Role.__members__:
            grants.append(Grant(Role(role), pattern))
    return tuple(grants)


def stored(grants: Iterable[Grant]) -> list[dict[str, str]]:
    """Grants as the ``grants`` column keeps them: each once, in the order given."""
    return [g.as_dict() for g in dict.fromkeys(grants)]


def role_on(grants: Iterable[Grant], namespace: str) -> Role | None:
    """The highest role the grants give on the namespace named so; None for no access."""
    best: Role | None = None
    for grant in grants:
        if (best is None or grant.role.rank > best.rank) and grant.covers(namespace):
            best = grant.role
    return best


def allowed(grants: Iterable[Grant], namespace: str, permission: Permission) -> bool:
    """Whether the grants let their holder ``permission`` the namespace named so."""
    role = role_on(grants, namespace)
    return role is not None and role.at_least(NEEDED[permission])


def tenant_role(grants: Iterable[Grant]) -> Role:
    """The role on the whole tenant: the highest granted on ``**``; ``viewer`` (a member, who
    sees the tenant's namespace list but reads only what other grants give) otherwise."""
    roles = [g.role for g in grants if g.namespaces == EVERYWHERE]
    return max(roles, key=lambda r: r.rank, default=Role.viewer)


def highest(grants: Iterable[Grant]) -> Role | None:
    """The highest role granted anywhere."""
    return max((g.role for g in grants), key=lambda r: r.rank, default=None)


def within(pattern: str, grant_pattern: str) -> bool:
    """Whether every namespace ``pattern`` matches is matched by ``grant_pattern``: a cautious
    answer (False when unsure), used to refuse tokens wider than their maker's grants early;
    each use of a token checks its user's grants again anyway."""
    if grant_pattern == EVERYWHERE or pattern == grant_pattern:
        return True
    if "**" in pattern:  # only a '**' at the same place or above covers a '**'
        prefix = grant_pattern.removesuffix("**")
        return grant_pattern.endswith("/**") and pattern.startswith(prefix)
    return bool(compile_pattern(grant_pattern).fullmatch(pattern))
