"""Token scopes: namespace glob patterns with ``read`` / ``write`` / ``secrets`` permissions.

``read`` reads a namespace, its entries and its resolved config with secret values masked;
``secrets`` (beside ``read``) has those secret values decrypted; ``write`` writes its entries.

Patterns are matched against whole namespace names: ``*`` matches within one path segment,
``?`` one character of a segment, ``**`` anything including ``/``. So ``payments/*`` matches
``payments/production`` but neither ``payments`` nor ``payments/production/eu``;
``payments/**`` matches everything below ``payments``; ``**`` matches every namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Permission = Literal["read", "write", "secrets"]
PERMISSIONS: tuple[Permission, ...] = ("read", "write", "secrets")
PATTERN_RE = re.compile(r"^[a-z0-9_.*?-]+(/[a-z0-9_.*?-]+)*$")
PATTERN_RULES = (
    "a namespace name in which '*' matches within one segment, '?' one character and "
    "'**' anything including '/', e.g. payments/* or payments/**"
)


def check_pattern(pattern: str) -> str:
    if len(pattern) > 255 or not PATTERN_RE.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not a namespace pattern: use {PATTERN_RULES}")
    return pattern


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class Scope:
    pattern: str
    permissions: frozenset[Permission]

    def allows(self, namespace: str, permission: Permission) -> bool:
        return permission in self.permissions and bool(
            compile_pattern(self.pattern).fullmatch(namespace)
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "namespaces": self.pattern,
            "permissions": [p for p in PERMISSIONS if p in self.permissions],
        }


def parse_scopes(raw: object) -> tuple[Scope, ...]:
    """Scopes as stored (``[{"namespaces": ..., "permissions": [...]}]``); bad items are dropped."""
    scopes: list[Scope] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        pattern = item.get("namespaces")
        permissions = item.get("permissions")
        if not isinstance(pattern, str) or not isinstance(permissions, list):
            continue
        allowed = frozenset(p for p in PERMISSIONS if p in permissions)
        if allowed:
            scopes.append(Scope(pattern, allowed))
    return tuple(scopes)
