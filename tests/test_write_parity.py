"""The single-entry write path answers exactly as FastAPI's routes do.

The same well-formed and malformed writes go to two tenants set up alike: one through the
dispatcher's fast write path, the other straight to FastAPI's routes (``fast_paths`` off, as the
read path's parity test in ``test_delivery`` does). Answer by answer, the status, the headers (but
the request id) and the bodies (but ids and timestamps, which differ between the tenants) match.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson

from tests.conftest import Account, register
from tests.support.changes import protect
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    read,
    read_write,
    service_account,
    set_entry,
)


@dataclass
class Side:
    """One tenant's copy of the setting: its owner, namespace and tokens."""

    owner: Account
    namespace: str
    protected: str  # a namespace whose changes go through change requests
    reader: dict[str, str]  # an API token that may only read
    writer: dict[str, str]  # an API token that may write
    ids: dict[str, str]  # id -> what it stands for, in both tenants' answers alike


async def prepare(client: httpx.AsyncClient, name: str) -> Side:
    owner = await register(client, name)
    namespace = await make_namespace(client, owner, "app")
    await set_entry(client, owner, namespace, "existing", "v1")
    reader_account = await service_account(client, owner, "reader")
    writer_account = await service_account(client, owner, "writer")
    reader = await make_token(client, owner, read("**"), service_account_id=reader_account)
    writer = await make_token(client, owner, read_write("**"), service_account_id=writer_account)
    protected = await make_namespace(client, owner, "shop/production")
    await set_entry(client, owner, protected, "existing", "v1")
    await protect(client, owner, "*/production")
    ids = {
        namespace: "<namespace>",
        protected: "<protected>",
        owner.email: "<owner email>",
        owner.user_id: "<user>",
        owner.tenant_id: "<tenant>",
        reader_account: "<reader>",
        writer_account: "<writer>",
        reader["id"]: "<reader token>",
        writer["id"]: "<writer token>",
    }
    return Side(owner, namespace, protected, bearer(reader["token"]), bearer(writer["token"]), ids)


Request = Callable[[Side], tuple[str, str, dict[str, Any]]]


def write(
    method: str, path: str, who: str = "owner", *, protected: bool = False, **options: Any
) -> Request:
    """A request under the side's namespace (``path`` after ``…/configs``) by ``who``; under
    the protected one with ``protected``."""

    def made(side: Side) -> tuple[str, str, dict[str, Any]]:
        credentials = {
            "owner": side.owner.headers,
            "reader": side.reader,
            "writer": side.writer,
            "nobody": {},
            "forger": {"Authorization": "Bearer kfg_" + "a" * 48},
        }[who]
        sent = dict(options)
        sent["headers"] = {**credentials, **options.get("headers", {})}
        namespace = side.protected if protected else side.namespace
        return method, f"/api/v1/namespaces/{namespace}/configs{path}", sent

    return made


def nested(depth: int) -> bytes:
    return b'{"value": ' + b"[" * depth + b"]" * depth + b"}"


CASES: list[tuple[str, Request]] = [
    # Well formed.
    (
        "create by PUT",
        write(
            "PUT",
            "/pool",
            json={"value": 5, "value_type": "number"},
            headers={"X-Konfig-Message": "déploiement".encode()},
        ),
    ),
    ("replace", write("PUT", "/pool", json={"value": 6}, headers={"If-Match": '"1"'})),
    ("stale If-Match", write("PUT", "/pool", json={"value": 7}, headers={"If-Match": '"1"'})),
    ("If-None-Match: *", write("PUT", "/pool", json={"value": 7}, headers={"If-None-Match": "*"})),
    ("an unquoted If-Match", write("PUT", "/pool", json={"value": 8}, headers={"If-Match": "2"})),
    ("a trailing slash", write("PUT", "/pool/", json={"value": 9}, headers={"If-Match": "3"})),
    ("create by POST", write("POST", "", json={"key": "name", "value": "x", "description": "d"})),
    ("POST an existing key", write("POST", "", json={"key": "name", "value": "x"})),
    ("patch", write("PATCH", "/name", json={"value": "y"}, headers={"If-Match": '"1"'})),
    ("patch a missing key", write("PATCH", "/missing", json={"value": "y"})),
    ("a secret, masked", write("PUT", "/password", json={"value": "s3cr3t", "is_secret": True})),
    ("by an API token", write("PUT", "/by_token", "writer", json={"value": "t"})),
    ("delete", write("DELETE", "/name", headers={"If-Match": '"2"'})),
    ("delete a missing key", write("DELETE", "/name")),
    ("delete, stale", write("DELETE", "/pool", headers={"If-Match": '"1"'})),
    # A protected namespace: 202 with the change request (one draft gathers them).
    ("protected: PUT", write("PUT", "/pool", protected=True, json={"value": "5"})),
    ("protected: POST", write("POST", "", protected=True, json={"key": "name", "value": "x"})),
    ("protected: PATCH", write("PATCH", "/existing", protected=True, json={"value": "v2"})),
    ("protected: DELETE", write("DELETE", "/existing", protected=True)),
    ("protected: written back", write("PUT", "/existing", protected=True, json={"value": "v1"})),
    ("protected: unchanged", write("PUT", "/existing", protected=True, json={"value": "v1"})),
    ("protected: missing key", write("DELETE", "/missing", protected=True)),
    ("protected: by a token", write("PUT", "/t", "writer", protected=True, json={"value": "1"})),
    ("protected: read-only", write("PUT", "/t", "reader", protected=True, json={"value": 1})),
    (
        "protected: a bypass under hard enforcement",
        write(
            "PUT",
            "/pool",
            protected=True,
            json={"value": "6"},
            headers={"X-Konfig-Bypass-Reason": "incident 42"},
        ),
    ),
    # Refused by the rules.
    (
        "value against its schema",
        write(
            "PUT", "/short", json={"value": "far too long", "validation_schema": {"max_length": 3}}
        ),
    ),
    ("no credentials", write("PUT", "/k", "nobody", json={"value": 1})),
    ("an unknown token", write("PUT", "/k", "forger", json={"value": 1})),
    ("a read-only token", write("PUT", "/k", "reader", json={"value": 1})),
    ("a read-only token deletes", write("DELETE", "/existing", "reader")),
    # Malformed.
    (
        "broken JSON",
        write("PUT", "/k", content=b'{"value": ', headers={"Content-Type": "application/json"}),
    ),
    (
        "broken JSON over lines",
        write(
            "PUT", "/k", content=b'{\n "value": 1,\n}', headers={"Content-Type": "application/json"}
        ),
    ),
    ("no Content-Type", write("PUT", "/k", content=b'{"value": 1}')),
    ("an unknown field", write("PUT", "/k", json={"value": 1, "bogus": 2})),
    ("a bad key", write("PUT", "/9lives", json={"value": 1})),
    ("POST without a key", write("POST", "", json={"value": 1})),
    ("beyond 64 bits", write("PUT", "/k", json={"value": 2**70, "value_type": "number"})),
    (
        "nested too deep",
        write("PUT", "/k", content=nested(200), headers={"Content-Type": "application/json"}),
    ),
    ("a NUL in a value", write("PUT", "/k", json={"value": "a\x00b"})),
    (
        "a message too long",
        write("PUT", "/k", json={"value": 1}, headers={"X-Konfig-Message": "m" * 1001}),
    ),
    (
        "not JSON",
        write("PUT", "/k", content=b'{"value": 1}', headers={"Content-Type": "text/plain"}),
    ),
]


def normalised(answer: httpx.Response, side: Side) -> tuple[int, dict[str, str], Any]:
    """The answer with what must differ between the tenants taken out."""
    headers = {k: v for k, v in answer.headers.items() if k not in ("x-request-id", "date")}
    assert int(headers.pop("content-length", "0")) == len(answer.content)
    text = answer.text
    if answer.status_code == 202:  # a change request, made in each tenant under its own id
        side.ids[answer.json()["id"]] = "<change request>"
        headers["location"] = headers["location"].replace(answer.json()["id"], "<change request>")
    for found, meaning in side.ids.items():
        text = text.replace(found, meaning)
    body: Any = orjson.loads(text) if text else None
    if isinstance(body, dict):
        body.pop("created_at", None)
        body.pop("updated_at", None)
    return answer.status_code, headers, body


async def test_the_write_path_answers_as_the_routes(app: Any, client: httpx.AsyncClient) -> None:
    fast, routed = await prepare(client, "fast"), await prepare(client, "routed")
    statuses: dict[str, int] = {}
    for case, request in CASES:
        method, url, options = request(fast)
        fast_answer = await client.request(method, url, **options)
        app.fast_paths = False
        try:
            method, url, options = request(routed)
            routed_answer = await client.request(method, url, **options)
        finally:
            app.fast_paths = True
        assert normalised(fast_answer, fast) == normalised(routed_answer, routed), case
        assert fast_answer.status_code < 500, (case, fast_answer.text)
        statuses[case] = fast_answer.status_code
    protected = {case: status for case, status in statuses.items() if case.startswith("protected")}
    assert protected == {
        "protected: PUT": 202,
        "protected: POST": 202,
        "protected: PATCH": 202,
        "protected: DELETE": 202,
        "protected: written back": 202,  # out of the draft again
        "protected: unchanged": 200,
        "protected: missing key": 404,
        "protected: by a token": 202,
        "protected: read-only": 403,
        "protected: a bypass under hard enforcement": 403,
    }


async def test_a_namespace_of_another_tenant_is_not_found_both_ways(
    app: Any, client: httpx.AsyncClient
) -> None:
    fast, routed = await prepare(client, "fast"), await prepare(client, "routed")
    stranger = str(uuid.uuid4())
    answers = []
    for side, other, fast_paths in ((fast, routed, True), (routed, fast, False)):
        app.fast_paths = fast_paths
        try:
            for namespace in (stranger, other.namespace):
                url = f"/api/v1/namespaces/{namespace}/configs/k"
                answer = await client.put(url, headers=side.owner.headers, json={"value": 1})
                seen = replace(side, ids={**side.ids, other.namespace: "<other namespace>"})
                answers.append(normalised(answer, seen))
        finally:
            app.fast_paths = True
    assert [status for status, _, _ in answers] == [404] * 4
    assert answers[:2] == answers[2:]
