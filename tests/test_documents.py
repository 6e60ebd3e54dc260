"""PUT …/document: a whole namespace from one JSON or YAML body, atomically, in one revision."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Account, add_user, assert_error
from tests.support.revisions import (
    API,
    contents,
    namespace_revision,
    new_namespace,
    put_entry,
    snapshot,
)

DOCUMENT: dict[str, Any] = {
    "entries": [
        {"key": "db_url", "value": "postgres://db/payments", "description": "primary"},
        {
            "key": "timeout",
            "value": 30,
            "value_type": "number",
            "validation_schema": {"min_value": 1, "max_value": 60},
        },
        {
            "key": "feature_flags",
            "value": {"new_ui": True, "beta": {"ids": [1, 2]}},
            "value_type": "json",
        },
        {"key": "api_key", "value": "k-123", "is_secret": True},
    ]
}
YAML_DOCUMENT = """\
# a comment is fine
entries:
  - key: db_url
    value: postgres://db/payments
    description: primary
  - key: timeout
    value: 30
    value_type: number
    validation_schema: {min_value: 1, max_value: 60}
  - key: feature_flags
    value_type: json
    value:
      new_ui: true
      beta: {ids: [1, 2]}
  - key: api_key
    value: k-123
    is_secret: true
"""


async def put_document(
    client: httpx.AsyncClient,
    account: Account,
    ns: str,
    body: bytes | str,
    content_type: str = "application/json",
    **params: Any,
) -> httpx.Response:
    headers = {**account.headers, "Content-Type": content_type}
    for name in ("If-Match", "X-Konfig-Message"):
        if name in params:
            headers[name] = params.pop(name)
    return await client.put(
        f"{API}/namespaces/{ns}/document", headers=headers, content=body, params=params
    )


async def test_a_document_replaces_every_entry_in_one_revision(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "old_key", "goes away")
    await put_entry(client, owner, ns, "db_url", "postgres://old")

    answer = await put_document(
        client, owner, ns, orjson.dumps(DOCUMENT), **{"X-Konfig-Message": "v2"}
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["previous_revision"], result["revision"], result["committed"]) == (2, 3, True)
    assert answer.headers["ETag"] == '"3"'
    diff = result["diff"]
    assert [a["key"] for a in diff["added"]] == ["api_key", "feature_flags", "timeout"]
    assert [r["key"] for r in diff["removed"]] == ["old_key"]
    assert [(c["key"], c["fields"]) for c in diff["changed"]] == [
        ("db_url", ["value", "description"])
    ]
    assert "k-123" not in answer.text

    revisions = (await client.get(f"{API}/namespaces/{ns}/revisions", headers=owner.headers)).json()
    assert revisions["items"][0]["message"] == "v2"
    assert len(revisions["items"][0]["keys"]) == 5

    document = await client.get(
        f"{API}/namespaces/{ns}/document", headers=owner.headers, params={"reveal": "true"}
    )
    assert document.headers["ETag"] == '"3"'
    by_key = {e["key"]: e for e in document.json()["entries"]}
    assert by_key["feature_flags"]["value"] == {"new_ui": True, "beta": {"ids": [1, 2]}}
    assert by_key["api_key"]["value"] == "k-123" and by_key["api_key"]["is_secret"] is True

    again = await put_document(client, owner, ns, orjson.dumps(DOCUMENT))
    assert again.json()["committed"] is False and again.json()["revision"] == 3


@pytest.mark.parametrize(
    "content_type", ["application/yaml", "text/yaml", "application/x-yaml; charset=utf-8"]
)
async def test_a_yaml_document_means_the_same_as_its_json(
    client: httpx.AsyncClient, owner: Account, content_type: str
) -> None:
    from_yaml = await new_namespace(client, owner, "from/yaml")
    from_json = await new_namespace(client, owner, "from/json")
    assert (
        await put_document(client, owner, from_yaml, YAML_DOCUMENT, content_type)
    ).status_code == 200
    assert (await put_document(client, owner, from_json, orjson.dumps(DOCUMENT))).status_code == 200
    assert contents(await snapshot(client, owner, from_yaml, 1, reveal="true")) == contents(
        await snapshot(client, owner, from_json, 1, reveal="true")
    )


async def test_a_dry_run_answers_the_diff_and_writes_nothing(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "db_url", "postgres://old")
    dry = await put_document(client, owner, ns, orjson.dumps(DOCUMENT), dry_run="true")
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert plan["dry_run"] is True and plan["committed"] is False
    assert (plan["revision"], plan["diff"]["from_revision"], plan["diff"]["to_revision"]) == (
        1,
        1,
        None,
    )
    assert len(plan["diff"]["added"]) == 3 and plan["diff"]["changed"][0]["key"] == "db_url"
    assert plan["diff"]["changed"][0]["new"]["version"] is None
    assert await namespace_revision(client, owner, ns) == 1


async def test_one_bad_entry_rejects_the_document_and_every_bad_entry_is_listed(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "keep", "me")
    bad = {
        "entries": [
            {"key": "fine", "value": "ok"},
            {
                "key": "timeout",
                "value": 99,
                "value_type": "number",
                "validation_schema": {"max_value": 60},
            },
            {"key": "flag", "value": "yes", "value_type": "boolean"},
            {
                "key": "secret_pin",
                "value": "1234-secret",
                "is_secret": True,
                "validation_schema": {"pattern": "^[a-z]+$"},
            },
        ]
    }
    twice = {"entries": [*bad["entries"], {"key": "fine", "value": "twice"}]}
    expected = {("timeout", "max_value"), ("flag", "type"), ("secret_pin", "pattern")}
    for document, problems in ((bad, expected), (twice, expected | {("fine", "unique")})):
        for dry_run in ("false", "true"):
            answer = await put_document(client, owner, ns, orjson.dumps(document), dry_run=dry_run)
            error = assert_error(answer, 422, "VALIDATION_ERROR")
            assert {(e["key"], e["rule"]) for e in error["details"]["errors"]} == problems
            assert "1234-secret" not in answer.text
    assert await namespace_revision(client, owner, ns) == 1
    assert contents(await snapshot(client, owner, ns, 1)) == {
        "keep": ("me", "string", None, "", False)
    }

    shapeless = await put_document(
        client,
        owner,
        ns,
        orjson.dumps({"entries": [{"key": "1bad", "value": "x"}, {"value": "no key"}], "extra": 1}),
    )
    error = assert_error(shapeless, 422, "VALIDATION_ERROR")
    assert {tuple(e["loc"]) for e in error["details"]["errors"]} == {
        ("entries", "0", "key"),
        ("entries", "1", "key"),
        ("extra",),
    }


async def test_if_match_guards_the_document_with_the_namespace_revision(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    etag = (await client.get(f"{API}/namespaces/{ns}/document", headers=owner.headers)).headers[
        "ETag"
    ]
    assert etag == '"0"'
    first = await put_document(client, owner, ns, orjson.dumps(DOCUMENT), **{"If-Match": etag})
    assert first.status_code == 200, first.text
    stale = await put_document(
        client, owner, ns, orjson.dumps({"entries": []}), **{"If-Match": etag}
    )
    error = assert_error(stale, 412, "PRECONDITION_FAILED")
    assert error["details"] == {"current_revision": 1}
    stale_dry = await put_document(
        client, owner, ns, orjson.dumps({"entries": []}), dry_run="true", **{"If-Match": etag}
    )
    assert_error(stale_dry, 412, "PRECONDITION_FAILED")
    emptied = await put_document(
        client, owner, ns, orjson.dumps({"entries": []}), **{"If-Match": 'W/"1"'}
    )
    assert emptied.json()["revision"] == 2 and len(emptied.json()["diff"]["removed"]) == 4


async def test_unsupported_media_and_yaml_that_is_not_plain_json_data(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    wrong = await put_document(client, owner, ns, "entries: []", "text/plain")
    assert_error(wrong, 415, "UNSUPPORTED_MEDIA_TYPE")
    refused: dict[str, str | bytes] = {
        "a date": "entries:\n  - key: day\n    value: 2024-01-01\n",
        "an alias": "entries:\n  - &e {key: a, value: b}\n  - *e\n",
        "binary": "entries:\n  - key: blob\n    value: !!binary aGk=\n",
        "a python tag": "entries: !!python/object/apply:os.system ['true']\n",
        "a non-string key": "entries:\n  - {key: a, value: {1: one}, value_type: json}\n",
        "a repeated key": "entries:\n  - key: a\n    key: b\n    value: c\n",
        "two documents": "entries: []\n---\nentries: []\n",
        "deep nesting": "entries: " + "[" * 500 + "]" * 500 + "\n",
        "broken syntax": "entries:\n  - key: a\n    value: 'sup3r-secret\n",
        "not a mapping": "- just\n- a list\n",
        "not utf-8": b"entries:\n  - key: a\n    value: \xff\xfe\n",
    }
    for what, body in refused.items():
        answer = await put_document(client, owner, ns, body, "application/yaml")
        error = assert_error(answer, 422, "VALIDATION_ERROR")
        assert "sup3r-secret" not in answer.text, what
        assert error["message"], what
    broken_json = await put_document(
        client, owner, ns, b'{"entries": [{"key": "a", "value": "sup3r-secret"', "application/json"
    )
    assert_error(broken_json, 422, "VALIDATION_ERROR")
    assert "sup3r-secret" not in broken_json.text
    assert await namespace_revision(client, owner, ns) == 0


async def test_a_masked_secret_in_a_document_keeps_the_stored_value(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "api_key", "the-real-key", is_secret=True)
    await put_entry(client, owner, ns, "region", "eu")
    masked = (await client.get(f"{API}/namespaces/{ns}/document", headers=owner.headers)).json()
    assert masked["entries"][0]["value"] == "********"
    masked["entries"][1]["value"] = "us"
    answer = await put_document(client, owner, ns, orjson.dumps(masked))
    assert answer.json()["committed"] is True
    assert [c["key"] for c in answer.json()["diff"]["changed"]] == ["region"]
    revealed = await snapshot(client, owner, ns, 3, reveal="true")
    assert contents(revealed)["api_key"][0] == "the-real-key"

    new_secret = {
        "entries": [
            *masked["entries"],
            {"key": "new_secret", "value": "********", "is_secret": True},
        ]
    }
    refused = await put_document(client, owner, ns, orjson.dumps(new_secret))
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert error["details"]["key"] == "new_secret" and error["details"]["rule"] == "masked"


async def test_writing_documents_needs_an_editor(client: httpx.AsyncClient, owner: Account) -> None:
    ns = await new_namespace(client, owner)
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")
    assert_error(await put_document(client, viewer, ns, orjson.dumps(DOCUMENT)), 403, "FORBIDDEN")
    assert (
        await client.get(f"{API}/namespaces/{ns}/document", headers=viewer.headers)
    ).status_code == 200
    assert (await put_document(client, editor, ns, orjson.dumps(DOCUMENT))).status_code == 200
    revealed = await client.get(
        f"{API}/namespaces/{ns}/document", headers=viewer.headers, params={"reveal": "true"}
    )
    assert_error(revealed, 403, "FORBIDDEN")
    assert "k-123" not in revealed.text
