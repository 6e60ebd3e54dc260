"""Templates: the contract a namespace declares for the environments under it.

``payments`` declares what every ``payments/*`` environment must provide: keys with a value
type, validation rules, a description, whether each is required, and a default. The nearest
ancestor's template governs a namespace; a copy of it is kept on the governed namespace
(``Namespace.contract``, settled whenever a template changes or a namespace is created), so a
write checks it against the row it locks anyway, at no cost to namespaces no template governs.

Writes are checked against it (``contract_problems``): a key it names takes its type and its
rules, and a required key cannot be deleted. What it does not name is allowed, and listed by
the conformance report (``conformance``), with missing required keys and keys of the wrong type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from konfig.configs.schemas import KEY_PATTERN
from konfig.configs.types import VALUE_TYPES, Limits, Problem, check_entry
from konfig.revisions.rows import EntryDraft

MAX_TEMPLATE_KEYS = 500


class TemplateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY_PATTERN)
    value_type: str = Field("string", description="One of " + ", ".join(VALUE_TYPES))
    validation_schema: dict[str, Any] | None = None
    description: str = Field("", max_length=1000)
    required: StrictBool = False  # true or false: never 0, 1 or "yes"
    is_secret: StrictBool = False
    default: Any = Field(None, description="Written into a namespace created from the template")

    @field_validator("value_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in VALUE_TYPES:
            raise ValueError(f"value_type must be one of {', '.join(VALUE_TYPES)}")
        return value


class Template(BaseModel):
    """What every environment under the namespace must provide."""

    model_config = ConfigDict(extra="forbid")

    keys: list[TemplateKey] = Field(max_length=MAX_TEMPLATE_KEYS)

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[TemplateKey]) -> list[TemplateKey]:
        seen: set[str] = set()
        for item in keys:
            if item.key in seen:
                raise ValueError(f"the key {item.key} is listed twice")
            seen.add(item.key)
        return keys

    def problems(self, limits: Limits) -> dict[str, list[Problem]]:
        """Each key's rules checked, and its default (when it has one) against them."""
        found: dict[str, list[Problem]] = {}
        for item in self.keys:
            value = item.default
            if value is None:  # no default: check the rules alone, with a value they accept
                value = {"string": "", "number": 0, "boolean": False, "json": None}.get(
                    item.value_type
                )
                if item.value_type == "select":
                    value = ((item.validation_schema or {}).get("options") or [None])[0]
            problems = check_entry(
                item.value_type, value, item.validation_schema, limits, secret=item.is_secret
            )
            if item.default is None:
                problems = [p for p in problems if p.field != "value"]
            if problems:
                found[item.key] = problems
        return found


def contract_of(template_namespace: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """What a governed namespace keeps: the template and the namespace that declares it."""
    return {"from": template_namespace, **template}


def governing(name: str, templates: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The contract for ``name``: the template of its nearest ancestor that has one."""
    parts = name.split("/")
    for end in range(len(parts) - 1, 0, -1):
        ancestor = "/".join(parts[:end])
        if ancestor in templates:
            return contract_of(ancestor, templates[ancestor])
    return None


def _keys(contract: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {item["key"]: item for item in contract.get("keys", ())}


def contract_problems(
    contract: Mapping[str, Any] | None,
    drafts: Iterable[EntryDraft],
    deleted: Iterable[str],
    limits: Limits,
) -> dict[str, list[Problem]]:
    """What a write breaks of the contract: a key of another type than the template's, a value
    its rules refuse, a required key deleted."""
    if not contract:
        return {}
    keys = _keys(contract)
    owner = contract.get("from", "its parent")
    found: dict[str, list[Problem]] = {}
    for draft in drafts:
        item = keys.get(draft.key)
        if item is None:
            continue
        expected = item.get("value_type", "string")
        if draft.value_type != expected:
            found.setdefault(draft.key, []).append(
                Problem(
                    "value_type",
                    "template",
                    f"the template of {owner} makes {draft.key} a {expected}, not a "
                    f"{draft.value_type}",
                )
            )
            continue
        problems = check_entry(
            expected,
            draft.value,
            item.get("validation_schema"),
            limits,
            secret=draft.is_secret,
            key=draft.key,
        )
        for problem in problems:
            found.setdefault(draft.key, []).append(
                Problem(
                    problem.field,
                    problem.rule,
                    f"{problem.message} (a rule of the template of {owner})",
                    problem.too_large,
                )
            )
    for key in deleted:
        if keys.get(key, {}).get("required"):
            found.setdefault(key, []).append(
                Problem(
                    "key",
                    "required",
                    f"the template of {owner} requires {key}: it cannot be deleted",
                )
            )
    return found


def defaults(template: Template) -> list[EntryDraft]:
    """The entries a namespace created from the template starts with: each key with a default."""
    return [
        EntryDraft(
            item.key,
            item.default,
            item.value_type,
            item.validation_schema,
            item.description,
            item.is_secret,
        )
        for item in template.keys
        if item.default is not None
    ]


def report(
    contract: Mapping[str, Any],
    present: Iterable[str],
    own: Sequence[tuple[str, str, Any, bool]],
    limits: Limits,
) -> dict[str, Any]:
    """One environment against the contract: ``present`` are the keys its resolved config has,
    ``own`` its own entries ``(key, value_type, value, is_secret)``."""
    keys = _keys(contract)
    present = set(present)
    missing = sorted(k for k, item in keys.items() if item.get("required") and k not in present)
    wrong_type = []
    invalid = []
    unknown = []
    for key, value_type, value, secret in own:
        item = keys.get(key)
        if item is None:
            unknown.append(key)
            continue
        expected = item.get("value_type", "string")
        if value_type != expected:
            wrong_type.append({"key": key, "expected": expected, "actual": value_type})
            continue
        problems = check_entry(
            expected, value, item.get("validation_schema"), limits, secret=secret, key=key
        )
        if problems:
            invalid.append({"key": key, "message": problems[0].message})
    return {
        "missing": missing,
        "wrong_type": wrong_type,
        "invalid": invalid,
        "unknown": sorted(unknown),
        "conforms": not (missing or wrong_type or invalid),
    }
