"""Flows for history and revisions: entry versions, snapshots, diffs, rollback, documents,
import and export (see ``_base`` for what a flow is)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any

from konfig_client._base import Call, Flow, paginate, quote_segment
from konfig_client._operations import NamespaceRef, change_headers, flag, namespace_path


def entry_history(
    namespace: NamespaceRef, key: str, *, reveal: bool = False, limit: int | None = None
) -> Flow[list[dict[str, Any]]]:
    path = yield from namespace_path(namespace)
    params = {"reveal": flag(reveal), "limit": min(limit or 200, 200)}
    return (
        yield from paginate(f"{path}/configs/{quote_segment(key)}/history", params, max_items=limit)
    )


def rollback_entry(
    namespace: NamespaceRef, key: str, version: int, *, message: str | None = None
) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    body = {"version": version, "message": message}
    response = yield Call("POST", f"{path}/configs/{quote_segment(key)}/rollback", json=body)
    return response.json()  # type: ignore[no-any-return]


def list_revisions(
    namespace: NamespaceRef, *, limit: int | None = None
) -> Flow[list[dict[str, Any]]]:
    path = yield from namespace_path(namespace)
    params = {"limit": min(limit or 200, 200)}
    return (yield from paginate(f"{path}/revisions", params, max_items=limit))


def get_revision(
    namespace: NamespaceRef, revision: int, *, reveal: bool = False
) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    params = {"reveal": flag(reveal)}
    response = yield Call("GET", f"{path}/revisions/{int(revision)}", params=params)
    return response.json()  # type: ignore[no-any-return]


def diff(
    namespace: NamespaceRef,
    from_revision: int,
    to_revision: int | None = None,
    *,
    reveal: bool = False,
) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    params = {"from": from_revision, "to": to_revision, "reveal": flag(reveal)}
    response = yield Call("GET", f"{path}/diff", params=_present(params))
    return response.json()  # type: ignore[no-any-return]


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def rollback(
    namespace: NamespaceRef,
    revision: int,
    *,
    dry_run: bool = False,
    message: str | None = None,
    if_match: str | None = None,
) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    response = yield Call(
        "POST",
        f"{path}/rollback",
        params=_present({"dry_run": flag(dry_run)}),
        json={"revision": revision, "message": message},
        headers=change_headers(None, if_match),
    )
    return response.json()  # type: ignore[no-any-return]


def get_document(namespace: NamespaceRef, *, reveal: bool = False) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    response = yield Call("GET", f"{path}/document", params=_present({"reveal": flag(reveal)}))
    return response.json()  # type: ignore[no-any-return]


def put_document(
    namespace: NamespaceRef,
    document: dict[str, Any] | str,
    *,
    dry_run: bool = False,
    message: str | None = None,
    if_match: str | None = None,
) -> Flow[dict[str, Any]]:
    """Replace every entry: ``document`` is ``{"entries": [...]}`` or its YAML text."""
    path = yield from namespace_path(namespace)
    headers = change_headers(message, if_match)
    if isinstance(document, str):
        headers["Content-Type"] = "application/yaml"
        body: dict[str, Any] = {"content": document.encode()}
    else:
        body = {"json": document}
    response = yield Call(
        "PUT",
        f"{path}/document",
        params=_present({"dry_run": flag(dry_run)}),
        headers=headers,
        **body,
    )
    return response.json()  # type: ignore[no-any-return]


def export(
    namespace: NamespaceRef,
    *,
    format: str = "yaml",
    reveal: bool = False,
    revision: int | None = None,
) -> Flow[str]:
    path = yield from namespace_path(namespace)
    params = {"format": format, "reveal": flag(reveal), "revision": revision}
    response = yield Call("GET", f"{path}/export", params=_present(params))
    return response.text


IMPORT_MEDIA_TYPES = {
    "yaml": "application/yaml",
    "json": "application/json",
    "env": "text/plain",
    "properties": "text/plain",
}


def import_file(
    namespace: NamespaceRef,
    content: bytes | str | Iterable[bytes] | AsyncIterable[bytes],
    *,
    format: str,
    mode: str = "merge",
    dry_run: bool = False,
    message: str | None = None,
) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    headers = change_headers(message, None)
    headers["Content-Type"] = IMPORT_MEDIA_TYPES.get(format, "text/plain")
    params = {"format": format, "mode": mode, "dry_run": flag(dry_run)}
    response = yield Call(
        "POST",
        f"{path}/import",
        params=_present(params),
        headers=headers,
        content=content.encode() if isinstance(content, str) else content,
    )
    return response.json()  # type: ignore[no-any-return]
