"""``konfig import-tree``: load a YAML tree (the mirror's layout) straight into the database.

``DIR/<tenant>/<namespace path>.yaml`` becomes that namespace (created when missing), one
revision per namespace, all in one transaction: a single bad file leaves everything unchanged.
The tree never holds secrets, so replacing a namespace keeps its secret entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from konfig.changes import policies as protection
from konfig.db.engine import make_engine, make_sessionmaker, refresh_statistics
from konfig.db.migrate import upgrade
from konfig.db.session import COMMITTED, across_tenants, bind_tenant, open_session
from konfig.errors import KonfigError
from konfig.namespaces import repository as namespaces
from konfig.namespaces.models import Namespace
from konfig.namespaces.schemas import check_name
from konfig.revisions import formats
from konfig.revisions.documents import Mode, apply, document_builder, parse_document
from konfig.revisions.mirror import Mirror
from konfig.revisions.schemas import Document
from konfig.revisions.writer import lock_namespace, write_policy
from konfig.settings import Settings
from konfig.tenants import repository as tenants

ACTOR = "cli:import-tree"


class TreeError(Exception):
    """The tree cannot be imported; ``problems`` lists every file that is wrong."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True, slots=True)
class TreeFile:
    path: Path
    namespace: str
    document: Document


def read_tree(folder: Path) -> list[TreeFile]:
    """Every ``*.yaml``/``*.yml`` file below ``folder`` (hidden and temporary files skipped)."""
    found: list[TreeFile] = []
    problems: list[str] = []
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in (".yaml", ".yml")
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for path in paths:
        shown = path.relative_to(folder)
        name = shown.with_suffix("").as_posix()
        try:
            check_name(name)
            data = formats.load_yaml(formats.decode_text(path.read_bytes()))
            found.append(TreeFile(path, name, parse_document(data)))
        except (ValueError, OSError) as exc:
            problems.append(f"{shown}: {exc}")
        except KonfigError as exc:
            problems.append(f"{shown}: {exc.message}")
    if problems:
        raise TreeError(f"{len(problems)} file(s) cannot be imported", problems)
    return found


async def import_tree(
    settings: Settings,
    *,
    root: Path,
    tenant: str,
    mode: Mode,
    dry_run: bool,
    echo: Callable[[str], None],
) -> int:
    """Import ``root/<tenant>``; answers how many namespaces changed (or would change)."""
    folder = root / tenant
    if not folder.is_dir():
        raise TreeError(
            f"{folder} is not a directory: import-tree reads DIR/<tenant>/<namespace path>.yaml, "
            "the layout the mirror writes"
        )
    files = read_tree(folder)
    policy = write_policy(settings)
    if not dry_run:
        await upgrade(settings.resolved_migration_url)
    engine = make_engine(settings.resolved_database_url)
    changed = 0
    problems: list[str] = []
    try:
        sessionmaker = make_sessionmaker(engine)
        session = await open_session(sessionmaker, write=not dry_run)
        try:
            async with across_tenants(session, "operator: a tenant by its name"):
                owner = await tenants.get_by_name(session, name=tenant)
            if owner is None:
                raise TreeError(f"no tenant named {tenant}")
            await bind_tenant(session, owner.id)
            for tree_file in files:
                namespace = await namespaces.get_by_name(
                    session, tenant_id=owner.id, name=tree_file.namespace
                )
                created = namespace is None
                if namespace is None:
                    namespace = Namespace(
                        id=uuid.uuid4(),
                        tenant_id=owner.id,
                        name=tree_file.namespace,
                        description="",
                        includes=[],
                        revision=0,
                        updated_by=ACTOR,
                        protection=await protection.protection_for(
                            session, tenant_id=owner.id, name=tree_file.namespace
                        ),
                    )
                    if not dry_run:
                        await namespaces.create(session, namespace=namespace)
                if not dry_run:
                    namespace = await lock_namespace(
                        session, tenant_id=owner.id, namespace_id=namespace.id
                    )
                try:
                    result = await apply(
                        session,
                        policy=policy,
                        namespace=namespace,
                        actor=ACTOR,
                        build=document_builder(tree_file.document.entries),
                        replace=mode == "replace",
                        dry_run=dry_run,
                        message=tree_file.document.message or f"import-tree {tree_file.namespace}",
                        reveal=False,
                        principal=None,  # an operator at the server
                        keep_absent_secrets=True,
                    )
                except KonfigError as exc:
                    problems.append(f"{tree_file.namespace}: {exc.message}")
                    continue
                diff = result.diff
                counts = f"+{len(diff.added)} ~{len(diff.changed)} -{len(diff.removed)}"
                if result.committed or (dry_run and (diff.added or diff.changed or diff.removed)):
                    changed += 1
                state = (
                    "(dry run)"
                    if dry_run
                    else f"revision {result.revision}"
                    if result.committed
                    else "unchanged"
                )
                echo(f"{tree_file.namespace}: {counts} {state}{' (new)' if created else ''}")
            if problems:
                raise TreeError(f"{len(problems)} namespace(s) cannot be imported", problems)
            committed = session.info.pop(COMMITTED, [])
            if dry_run:
                await session.rollback()
            else:
                await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            await session.close()
        if committed and settings.mirror_dir is not None:
            await Mirror(settings.mirror_dir, sessionmaker, policy)(committed)
        if committed:
            await refresh_statistics(engine)  # a big tree changes what the planner should pick
    finally:
        await engine.dispose()
    return changed
