"""Templates across environments: declaring one, the conformance report, and creating an
environment from one (its defaults written as the first revision).

The rules live with namespaces (``konfig.namespaces.templates``), where every write path
checks them; here is what reads several namespaces at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.delivery import resolve
from konfig.errors import Conflict, ValidationFailed
from konfig.namespaces import repository as namespace_repository
from konfig.namespaces import service as namespaces
from konfig.namespaces import templates
from konfig.namespaces.models import Namespace
from konfig.namespaces.schemas import NamespaceCreate
from konfig.namespaces.templates import Template
from konfig.revisions import documents
from konfig.revisions.writer import WritePolicy, commit_changes, validation_error
from konfig.users.models import Role


class TemplateRead(BaseModel):
    namespace: str
    namespace_id: uuid.UUID
    template: Template | None = Field(description="null when the namespace declares none")
    governed_by: str | None = Field(
        None, description="The ancestor whose template governs this namespace, if any"
    )


class WrongType(BaseModel):
    key: str
    expected: str
    actual: str


class Invalid(BaseModel):
    key: str
    message: str


class EnvironmentConformance(BaseModel):
    namespace: str
    namespace_id: uuid.UUID
    conforms: bool
    missing: list[str] = Field(description="Required keys its resolved config lacks")
    wrong_type: list[WrongType]
    invalid: list[Invalid] = Field(description="Own values the template's rules refuse")
    unknown: list[str] = Field(description="Own keys the template does not name")


class ConformanceRead(BaseModel):
    template: str | None = Field(description="The namespace whose template is checked")
    environments: list[EnvironmentConformance]


class EnvironmentCreate(BaseModel):
    """A new environment under the template's namespace, its defaults written."""

    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=1000)


async def read(
    session: AsyncSession, *, principal: Principal, namespace_id: uuid.UUID
) -> TemplateRead:
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    return _read(namespace)


def _read(namespace: Namespace) -> TemplateRead:
    return TemplateRead(
        namespace=namespace.name,
        namespace_id=namespace.id,
        template=Template.model_validate(namespace.template) if namespace.template else None,
        governed_by=(namespace.contract or {}).get("from"),
    )


async def put(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    template: Template | None,
) -> TemplateRead:
    """Declare (or, with None, drop) the namespace's template (admins of the namespace)."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    principal.require_on(namespace.name, Role.admin)
    if template is not None:
        problems = template.problems(policy.limits)
        if problems:
            raise validation_error(problems)
    before = namespace.template
    namespace.template = template.model_dump(mode="json") if template is not None else None
    namespace.updated_by = principal.actor
    await session.flush()
    await namespaces.settle_contracts(
        session, tenant_id=namespace.tenant_id, under=[namespace.name]
    )
    await audit.record(
        session,
        action="namespace.template",
        target_type="namespace",
        target=namespace.name,
        namespace=namespace.name,
        summary={
            "before": [k["key"] for k in (before or {}).get("keys", [])],
            "after": [k.key for k in template.keys] if template is not None else [],
        },
    )
    return _read(namespace)


async def conformance(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
) -> ConformanceRead:
    """Each environment under the namespace's template (or, for a governed namespace, itself)
    against it: missing required keys, keys of the wrong type, values its rules refuse, keys
    it does not name."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    if namespace.template:
        source = namespace.name
        contract = templates.contract_of(namespace.name, namespace.template)
        checked = await namespace_repository.descendants(
            session, tenant_id=namespace.tenant_id, name=namespace.name
        )
        checked = [ns for ns in checked if (ns.contract or {}).get("from") == source]
    elif namespace.contract:
        source, contract, checked = namespace.contract["from"], namespace.contract, [namespace]
    else:
        return ConformanceRead(template=None, environments=[])
    checked = [ns for ns in checked if principal.allows(ns.name, "read")]
    resolutions = await resolve.load_many(
        session,
        keyring=policy.keyring,
        tenant_id=namespace.tenant_id,
        names=[ns.name for ns in checked],
        expand=False,
    )
    found = []
    for ns in checked:
        resolution = resolutions.get(ns.name)
        present = resolution.values.keys() if resolution is not None else ()
        states = await documents.current_states(session, policy, ns)
        own = [(k, s.value_type, s.value, s.is_secret) for k, s in states.items()]
        verdict: dict[str, Any] = templates.report(contract, present, own, policy.limits)
        found.append(EnvironmentConformance(namespace=ns.name, namespace_id=ns.id, **verdict))
    return ConformanceRead(template=source, environments=found)


async def create_environment(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    payload: EnvironmentCreate,
) -> Namespace:
    """Create a namespace under the template's namespace, its defaults as revision 1."""
    parent = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    if not parent.template:
        raise Conflict(f"{parent.name} declares no template to create an environment from")
    if not payload.name.startswith(parent.name + "/"):
        raise ValidationFailed(
            f"name: an environment of {parent.name}'s template is named {parent.name}/…",
            {"field": "name"},
        )
    try:
        request = NamespaceCreate(name=payload.name, description=payload.description)
    except PydanticError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise ValidationFailed(f"name: {first['msg']}", {"field": "name"}) from exc
    created = await namespaces.create(session, principal=principal, payload=request)
    drafts = templates.defaults(Template.model_validate(parent.template))
    if drafts:
        await commit_changes(
            session,
            policy=policy,
            tenant_id=created.tenant_id,
            namespace_id=created.id,
            actor=principal.actor,
            upserts=drafts,
            message=f"created from the template of {parent.name}",
            principal=principal,
        )
    return created
