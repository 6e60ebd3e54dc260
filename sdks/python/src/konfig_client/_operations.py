"""Every API operation, written once as a flow (see ``_base``) for both clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from konfig_client._base import API, Call, Flow, paginate, quote_name, quote_segment
from konfig_client._exceptions import NotFound

NamespaceRef = str | uuid.UUID

# --- auth ------------------------------------------------------------------------------------


def register(name: str, email: str, password: str) -> Flow[dict[str, Any]]:
    body = {"name": name, "email": email, "password": password}
    response = yield Call("POST", f"{API}/auth/register", json=body)
    return response.json()  # type: ignore[no-any-return]


def login(email: str, password: str) -> Flow[dict[str, Any]]:
    body = {"email": email, "password": password}
    response = yield Call("POST", f"{API}/auth/login", json=body)
    return response.json()  # type: ignore[no-any-return]


def refresh(refresh_token: str) -> Flow[dict[str, Any]]:
    body = {"refresh_token": refresh_token}
    response = yield Call("POST", f"{API}/auth/refresh", json=body)
    return response.json()  # type: ignore[no-any-return]


def logout() -> Flow[None]:
    yield Call("POST", f"{API}/auth/logout")


def me() -> Flow[dict[str, Any]]:
    response = yield Call("GET", f"{API}/auth/me")
    return response.json()  # type: ignore[no-any-return]


# --- namespaces ------------------------------------------------------------------------------


def find_namespace(name: str) -> Flow[dict[str, Any]]:
    """The namespace called exactly ``name`` (the list filter is only a prefix)."""
    params: dict[str, Any] = {"prefix": name, "limit": 200}
    while True:
        response = yield Call("GET", f"{API}/namespaces", params=params)
        page = response.json()
        for namespace in page["items"]:
            if namespace["name"] == name:
                return namespace  # type: ignore[no-any-return]
        # Names sort after their prefix: once past it, it is not there.
        if not page.get("next_cursor") or any(n["name"] > name for n in page["items"]):
            raise NotFound(f"no namespace named {name!r}", code="NOT_FOUND", status_code=404)
        params["cursor"] = page["next_cursor"]


def namespace_id(namespace: NamespaceRef) -> Flow[str]:
    """The id of a namespace given by name (or already by ``uuid.UUID``)."""
    if isinstance(namespace, uuid.UUID):
        return str(namespace)
    found = yield from find_namespace(namespace)
    return str(found["id"])


def namespace_path(namespace: NamespaceRef) -> Flow[str]:
    ident = yield from namespace_id(namespace)
    return f"{API}/namespaces/{ident}"


def list_namespaces(prefix: str | None = None) -> Flow[list[dict[str, Any]]]:
    return (yield from paginate(f"{API}/namespaces", {"prefix": prefix, "limit": 200}))


def get_namespace(namespace: NamespaceRef) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    response = yield Call("GET", path)
    return response.json()  # type: ignore[no-any-return]


def create_namespace(
    name: str, description: str = "", includes: list[str] | None = None
) -> Flow[dict[str, Any]]:
    body = {"name": name, "description": description, "includes": includes or []}
    response = yield Call("POST", f"{API}/namespaces", json=body)
    return response.json()  # type: ignore[no-any-return]


def update_namespace(
    namespace: NamespaceRef, *, description: str | None, includes: list[str] | None
) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    body = {
        k: v for k, v in {"description": description, "includes": includes}.items() if v is not None
    }
    response = yield Call("PATCH", path, json=body)
    return response.json()  # type: ignore[no-any-return]


def delete_namespace(namespace: NamespaceRef, *, force: bool = False) -> Flow[None]:
    path = yield from namespace_path(namespace)
    yield Call("DELETE", path, params={"force": "true"} if force else None)


# --- config entries --------------------------------------------------------------------------


def list_entries(namespace: NamespaceRef, *, reveal: bool = False) -> Flow[list[dict[str, Any]]]:
    path = yield from namespace_path(namespace)
    params = {"reveal": "true" if reveal else None, "limit": 200}
    return (yield from paginate(f"{path}/configs", params))


def get_entry(namespace: NamespaceRef, key: str, *, reveal: bool = False) -> Flow[dict[str, Any]]:
    path = yield from namespace_path(namespace)
    params = {"reveal": "true"} if reveal else None
    response = yield Call("GET", f"{path}/configs/{quote_segment(key)}", params=params)
    return response.json()  # type: ignore[no-any-return]


class _Unset:
    """A keyword left out: its field is not sent, so the entry keeps its setting."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def set_entry(
    namespace: NamespaceRef,
    key: str,
    value: Any,
    *,
    value_type: str | None = None,
    secret: bool | None = None,
    description: str | None = None,
    validation_schema: Any = UNSET,
    message: str | None = None,
    if_match: str | None = None,
    bypass_reason: str | None = None,
) -> Flow[dict[str, Any]]:
    """PUT the value and only the settings given: an existing entry keeps the others (its type,
    schema, description and secret flag); a new one takes the server's defaults. On a protected
    namespace it answers the change request it went into, unless ``bypass_reason`` (an admin,
    soft enforcement) commits it directly."""
    path = yield from namespace_path(namespace)
    body: dict[str, Any] = {"value": value}
    given = {
        "value_type": value_type,
        "is_secret": secret,
        "description": description,
    }
    body.update({name: setting for name, setting in given.items() if setting is not None})
    if validation_schema is not UNSET:
        body["validation_schema"] = validation_schema
    if message:
        body["message"] = message
    headers = {"If-Match": if_match} if if_match else {}
    if bypass_reason is not None:
        headers["X-Konfig-Bypass-Reason"] = bypass_reason
    response = yield Call("PUT", f"{path}/configs/{quote_segment(key)}", json=body, headers=headers)
    return response.json()  # type: ignore[no-any-return]


def update_entry(
    namespace: NamespaceRef,
    key: str,
    fields: dict[str, Any],
    *,
    message: str | None = None,
    if_match: str | None = None,
) -> Flow[dict[str, Any]]:
    """PATCH the fields given (those not ``UNSET``) of an existing entry."""
    path = yield from namespace_path(namespace)
    body = {name: setting for name, setting in fields.items() if setting is not UNSET}
    if message:
        body["message"] = message
    headers = {"If-Match": if_match} if if_match else {}
    response = yield Call(
        "PATCH", f"{path}/configs/{quote_segment(key)}", json=body, headers=headers
    )
    return response.json()  # type: ignore[no-any-return]


def delete_entry(
    namespace: NamespaceRef, key: str, *, if_match: str | None = None, message: str | None = None
) -> Flow[None]:
    path = yield from namespace_path(namespace)
    headers = change_headers(message, if_match)
    yield Call("DELETE", f"{path}/configs/{quote_segment(key)}", headers=headers)


# --- resolved config -------------------------------------------------------------------------


# --- audit -----------------------------------------------------------------------------------


def list_audit(
    *,
    actor: str | None = None,
    action: str | None = None,
    namespace: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
) -> Flow[list[dict[str, Any]]]:
    params = {
        "actor": actor,
        "action": action,
        "namespace": namespace,
        "since": since,
        "until": until,
        "limit": min(limit, 200),
    }
    return (yield from paginate(f"{API}/audit", params, max_items=limit))


def flag(value: bool) -> str | None:
    """A boolean query parameter: sent as ``true``, or left out."""
    return "true" if value else None


def change_headers(message: str | None, if_match: str | None) -> dict[str, str]:
    """``If-Match`` and ``X-Konfig-Message``, for those given."""
    headers = {"If-Match": if_match} if if_match else {}
    if message:
        headers["X-Konfig-Message"] = message
    return headers


# --- service accounts and API tokens ---------------------------------------------------------


def create_service_account(name: str, description: str = "") -> Flow[dict[str, Any]]:
    body = {"name": name, "description": description}
    response = yield Call("POST", f"{API}/service-accounts", json=body)
    return response.json()  # type: ignore[no-any-return]


def list_service_accounts() -> Flow[list[dict[str, Any]]]:
    return (yield from paginate(f"{API}/service-accounts", {"limit": 200}))


def service_account_id(account: str | uuid.UUID) -> Flow[str]:
    """The id of a service account given by name (or already by ``uuid.UUID``)."""
    if isinstance(account, uuid.UUID):
        return str(account)
    for found in (yield from list_service_accounts()):
        if found["name"] == account:
            return str(found["id"])
    raise NotFound(f"no service account named {account!r}", code="NOT_FOUND", status_code=404)


def delete_service_account(account: str | uuid.UUID) -> Flow[None]:
    ident = yield from service_account_id(account)
    yield Call("DELETE", f"{API}/service-accounts/{ident}")


def create_token(
    name: str,
    scopes: list[dict[str, Any]],
    *,
    service_account: str | uuid.UUID | None = None,
    expires_in_days: int | None = None,
    expires_at: str | None = None,
) -> Flow[dict[str, Any]]:
    body: dict[str, Any] = {"name": name, "scopes": scopes}
    if service_account is not None:
        body["service_account_id"] = yield from service_account_id(service_account)
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    if expires_at is not None:
        body["expires_at"] = expires_at
    response = yield Call("POST", f"{API}/tokens", json=body)
    return response.json()  # type: ignore[no-any-return]


def list_tokens(
    *, service_account: str | uuid.UUID | None = None, include_revoked: bool = False
) -> Flow[list[dict[str, Any]]]:
    params: dict[str, Any] = {"limit": 200, "include_revoked": flag(include_revoked)}
    if service_account is not None:
        params["service_account_id"] = yield from service_account_id(service_account)
    return (yield from paginate(f"{API}/tokens", params))


def get_token(token_id: str | uuid.UUID) -> Flow[dict[str, Any]]:
    response = yield Call("GET", f"{API}/tokens/{quote_segment(str(token_id))}")
    return response.json()  # type: ignore[no-any-return]


def revoke_token(token_id: str | uuid.UUID) -> Flow[None]:
    yield Call("DELETE", f"{API}/tokens/{quote_segment(str(token_id))}")


# --- backups --------------------------------------------------------------------------------


def create_backup() -> Flow[dict[str, Any]]:
    response = yield Call("POST", f"{API}/backups")
    return response.json()  # type: ignore[no-any-return]


def list_backups(*, limit: int | None = None) -> Flow[list[dict[str, Any]]]:
    params = {"limit": min(limit or 200, 200)}
    return (yield from paginate(f"{API}/backups", params, max_items=limit))


def get_backup(backup_id: str) -> Flow[dict[str, Any]]:
    response = yield Call("GET", f"{API}/backups/{quote_segment(backup_id)}")
    return response.json()  # type: ignore[no-any-return]


def download_backup(backup_id: str) -> Flow[bytes]:
    response = yield Call("GET", f"{API}/backups/{quote_segment(backup_id)}/download")
    return response.content


def restore_backup(
    backup_id: str,
    *,
    dry_run: bool = False,
    namespaces: list[str] | None = None,
    reveal: bool = False,
) -> Flow[dict[str, Any]]:
    body = {"dry_run": dry_run, "namespaces": namespaces or None, "reveal": reveal}
    response = yield Call("POST", f"{API}/backups/{quote_segment(backup_id)}/restore", json=body)
    return response.json()  # type: ignore[no-any-return]


# --- the read path ---------------------------------------------------------------------------

FORMATS = ("json", "yaml", "env", "properties")


@dataclass(frozen=True)
class Resolved:
    """A resolved config as read: its value (None when unchanged), ETag, and whether it changed."""

    value: Any
    etag: str | None
    changed: bool = True


def read_resolved(
    name: str, *, format: str = "json", etag: str | None = None, wait: float | None = None
) -> Flow[Resolved]:
    """``GET /config/{name}``: conditional with ``etag``, a long poll with ``wait`` as well."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    params: dict[str, Any] = {"format": format}
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
        if wait:
            params["wait"] = wait
    timeout = None if wait is None else wait + 15.0
    response = yield Call(
        "GET", f"{API}/config/{quote_name(name)}", params=params, headers=headers, timeout=timeout
    )
    if response.status_code == 304:
        return Resolved(None, etag, changed=False)
    value = response.json() if format == "json" else response.text
    return Resolved(value, response.headers.get("ETag"), changed=True)
