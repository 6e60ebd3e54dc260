"""Export and import in yaml, json, env and properties; yaml and json round-trip losslessly."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.conftest import Account, add_user, assert_error
from tests.support.revisions import (
    API,
    contents,
    namespace_revision,
    new_namespace,
    put_entry,
    snapshot,
)

TRICKY_STRINGS = [
    "yes", "no", "on", "off", "null", "~", "", " leading", "trailing ", "1e3", "0x10", "012",
    "1_000", "1:20", "2024-01-01", "#hash", "key: value", "- dash", "multi\nline\n", "tab\there",
    "unicode é ✓ 🎉", "'quoted'", '"dq"', "*star", "&amp", "!bang", "%percent", "@at", "{brace}",
    "[bracket]", ">", "|", "\\backslash", "\x07bell", "crlf\r\nline", "\u2028sep", ".inf", "<<",
    "---", "a #b",
]  # fmt: skip
TRICKY_NUMBERS = [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 0.1, 1e-7, 1.0, -0.0, 1e300]


async def export(
    client: httpx.AsyncClient, account: Account, ns: str, kind: str, **params: Any
) -> httpx.Response:
    answer = await client.get(
        f"{API}/namespaces/{ns}/export",
        headers=account.headers,
        params={"format": kind, **params},
    )
    return answer


async def import_file(
    client: httpx.AsyncClient,
    account: Account,
    ns: str,
    body: bytes | str,
    content_type: str = "text/plain",
    **params: Any,
) -> httpx.Response:
    return await client.post(
        f"{API}/namespaces/{ns}/import",
        headers={**account.headers, "Content-Type": content_type},
        content=body,
        params=params,
    )


async def seed(client: httpx.AsyncClient, account: Account, ns: str) -> None:
    await put_entry(client, account, ns, "db_url", "postgres://db/payments", description="primary")
    await put_entry(client, account, ns, "timeout", 30, value_type="number",
                    validation_schema={"min_value": 1, "integer": True})  # fmt: skip
    await put_entry(client, account, ns, "ratio", 0.5, value_type="number")
    await put_entry(client, account, ns, "debug", False, value_type="boolean")
    await put_entry(client, account, ns, "mode", "fast", value_type="select",
                    validation_schema={"options": ["fast", "safe"]})  # fmt: skip
    flags = {
        "new_ui": True,
        "beta": {"ids": [1, 2], "label": "hello world"},
        "empty": {},
        "none": None,
    }
    await put_entry(client, account, ns, "feature_flags", flags, value_type="json")
    await put_entry(client, account, ns, "hosts", ["a", "b"], value_type="json")
    await put_entry(client, account, ns, "api_key", "k-123", is_secret=True)
    await put_entry(client, account, ns, "motd", "line one\nline two")


PROPERTIES = (
    (
        "# konfig export of payments/production at revision 9; "
        "secret values masked as ******** (importing the mask keeps the stored value)\n"
    )
    + """\
api_key=********
db_url=postgres://db/payments
debug=false
feature_flags.new_ui=true
feature_flags.beta.ids=[1,2]
feature_flags.beta.label=hello world
feature_flags.empty={}
feature_flags.none=null
hosts=["a","b"]
mode=fast
motd=line one\\nline two
ratio=0.5
timeout=30
"""
)
ENV = """\
# konfig export of payments/production at revision 9
API_KEY=k-123
DB_URL=postgres://db/payments
DEBUG=false
FEATURE_FLAGS__NEW_UI=true
FEATURE_FLAGS__BETA__IDS="[1,2]"
FEATURE_FLAGS__BETA__LABEL="hello world"
FEATURE_FLAGS__EMPTY="{}"
FEATURE_FLAGS__NONE=null
HOSTS="[\\"a\\",\\"b\\"]"
MODE=fast
MOTD="line one\\nline two"
RATIO=0.5
TIMEOUT=30
"""


async def test_flat_exports_follow_the_documented_rules(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await seed(client, owner, ns)
    properties = await export(client, owner, ns, "properties")
    assert properties.status_code == 200, properties.text
    assert properties.headers["content-type"].startswith("text/plain")
    assert properties.headers["ETag"] == '"9"'
    assert properties.text == PROPERTIES
    env = await export(client, owner, ns, "env", reveal="true")
    assert env.text == ENV


@pytest.mark.parametrize("kind", ["env", "properties"])
async def test_flat_files_import_back_with_the_types_of_existing_entries(
    client: httpx.AsyncClient, owner: Account, kind: str
) -> None:
    ns = await new_namespace(client, owner)
    await seed(client, owner, ns)
    before = contents(await snapshot(client, owner, ns, 9, reveal="true"))
    for reveal in ("true", "false"):  # the masked secret keeps the stored value
        exported = (await export(client, owner, ns, kind, reveal=reveal)).text
        same = await import_file(client, owner, ns, exported, format=kind, mode="replace")
        assert same.status_code == 200, same.text
        assert same.json()["committed"] is False, same.json()["diff"]

    edited = {
        "env": "TIMEOUT=45\nDEBUG=TRUE\nFEATURE_FLAGS__NEW_UI=false\nFEATURE_FLAGS__BETA__FRESH=1\n"
        "MODE=safe\nRATIO=2e-3\nNEW_SETTING='hello # not a comment'\nexport HOSTS='[\"c\"]'\n",
        "properties": "timeout = 45\ndebug: TRUE\nfeature_flags.new_ui=false\n"
        "feature_flags.beta.fresh=1\nmode=safe\nratio=2e-3\n"
        "new.setting=hello \\\n  # not a comment\n"
        'hosts=["c"]\n',
    }[kind]
    merged = await import_file(client, owner, ns, edited, format=kind)
    assert merged.status_code == 200, merged.text
    assert merged.json()["revision"] == 10
    after = contents(await snapshot(client, owner, ns, 10, reveal="true"))
    new_key = "NEW_SETTING" if kind == "env" else "new.setting"
    assert after[new_key] == ("hello # not a comment", "string", None, "", False)
    assert after["timeout"][0] == 45 and after["ratio"][0] == 0.002 and after["mode"][0] == "safe"
    assert after["debug"][0] is True and after["hosts"][0] == ["c"]
    flags = after["feature_flags"][0]
    assert flags["new_ui"] is False and flags["beta"] == {
        "ids": [1, 2],
        "label": "hello world",
        "fresh": "1",
    }
    assert {
        k: v
        for k, v in after.items()
        if k not in (new_key, "timeout", "ratio", "mode", "debug", "hosts", "feature_flags")
    } == {
        k: v
        for k, v in before.items()
        if k not in ("timeout", "ratio", "mode", "debug", "hosts", "feature_flags")
    }


async def test_flat_import_replace_mode_deletes_and_bad_values_are_all_listed(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await seed(client, owner, ns)
    bad = "timeout=soon\ndebug=maybe\nfeature_flags={broken\nratio=12\n"
    refused = await import_file(client, owner, ns, bad, format="properties")
    error = assert_error(refused, 422, "VALIDATION_ERROR")
    assert {e["key"] for e in error["details"]["errors"]} == {"timeout", "debug", "feature_flags"}
    assert "soon" not in refused.text and "broken" not in refused.text

    dry = await import_file(
        client, owner, ns, "timeout=10\n", format="properties", mode="replace", dry_run="true"
    )
    assert dry.json()["committed"] is False and len(dry.json()["diff"]["removed"]) == 8
    assert await namespace_revision(client, owner, ns) == 9
    replaced = await import_file(
        client,
        owner,
        ns,
        "timeout=10\nfeature_flags.new_ui=false\n",
        format="properties",
        mode="replace",
    )
    assert replaced.json()["revision"] == 10
    assert contents(await snapshot(client, owner, ns, 10)) == {
        "feature_flags": ({"new_ui": False}, "json", None, "", False),
        "timeout": (10, "number", {"min_value": 1, "integer": True}, "", False),
    }

    syntax = await import_file(client, owner, ns, "OK=1\nnot a pair with s3cret\n", format="env")
    error = assert_error(syntax, 422, "VALIDATION_ERROR")
    assert error["details"]["line"] == 2 and "s3cret" not in syntax.text
    unsaid = await import_file(client, owner, ns, "x=1", content_type="text/plain")
    assert assert_error(unsaid, 422, "VALIDATION_ERROR")["details"] == {"field": "format"}
    unknown = await import_file(client, owner, ns, "x=1", content_type="application/octet-stream")
    assert_error(unknown, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_into_an_empty_namespace_flat_values_import_as_strings(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    answer = await import_file(
        client, owner, ns, "PORT=8080\nDEBUG=true\n# comment\n\nNAME=svc\n", format="env"
    )
    assert answer.status_code == 200, answer.text
    assert contents(await snapshot(client, owner, ns, 1)) == {
        "DEBUG": ("true", "string", None, "", False),
        "NAME": ("svc", "string", None, "", False),
        "PORT": ("8080", "string", None, "", False),
    }


async def test_yaml_and_json_exports_round_trip_losslessly(
    client: httpx.AsyncClient, owner: Account
) -> None:
    source = await new_namespace(client, owner, "source")
    values: list[Any] = [*TRICKY_STRINGS, *TRICKY_NUMBERS, True, False, {}, [], [None]]
    values.append({s: [s, None, {"n": 1.5}] for s in TRICKY_STRINGS})
    entries = [
        {"key": f"key_{i:02}", "value": v, "value_type": "json", "description": f"d {i}"}
        for i, v in enumerate(values)
    ]
    entries += [
        {"key": f"text_{i:02}", "value": s, "is_secret": i % 2 == 0}
        for i, s in enumerate(TRICKY_STRINGS)
    ]
    entries.append(
        {
            "key": "pick",
            "value": 2,
            "value_type": "select",
            "validation_schema": {"options": [1, 2, "x"]},
        }
    )
    created = await client.put(
        f"{API}/namespaces/{source}/document", headers=owner.headers, json={"entries": entries}
    )
    assert created.status_code == 200, created.text
    original = contents(await snapshot(client, owner, source, 1, reveal="true"))

    for kind, content_type in (("yaml", "application/yaml"), ("json", "application/json")):
        exported = await export(client, owner, source, kind, reveal="true")
        assert exported.headers["content-type"].startswith(content_type)
        assert exported.headers["ETag"] == '"1"'
        target = await new_namespace(client, owner, f"copy/{kind}")
        copied = await import_file(
            client, owner, target, exported.content, content_type, mode="replace"
        )
        assert copied.status_code == 200, copied.text
        assert contents(await snapshot(client, owner, target, 1, reveal="true")) == original
        again = await import_file(
            client, owner, source, exported.content, content_type, mode="replace"
        )
        assert again.json()["committed"] is False
    parsed = yaml.safe_load((await export(client, owner, source, "yaml", reveal="true")).text)
    assert [e["value"] for e in parsed["entries"][: len(values)]] == values
    assert (
        orjson.loads((await export(client, owner, source, "json")).content)["entries"][0]["key"]
        == "key_00"
    )


async def test_secrets_are_exported_only_to_those_who_may_reveal_them(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "api_key", "k-123", is_secret=True)
    await put_entry(
        client, owner, ns, "oauth", {"client_secret": "cs-456"}, value_type="json", is_secret=True
    )
    await put_entry(client, owner, ns, "region", "eu")
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    for kind in ("yaml", "json", "env", "properties"):
        masked = await export(client, viewer, ns, kind)
        assert masked.status_code == 200 and "********" in masked.text
        assert "k-123" not in masked.text and "cs-456" not in masked.text
        denied = await export(client, viewer, ns, kind, reveal="true")
        assert_error(denied, 403, "FORBIDDEN")
        revealed = (await export(client, owner, ns, kind, reveal="true")).text
        assert "k-123" in revealed and "cs-456" in revealed
        # Importing the masked export changes nothing: each mask keeps its stored secret.
        kept = await import_file(client, owner, ns, masked.content, format=kind, mode="replace")
        assert kept.status_code == 200, kept.text
        assert kept.json()["committed"] is False, kept.json()["diff"]
    viewer_import = await import_file(client, viewer, ns, "region=us", format="properties")
    assert_error(viewer_import, 403, "FORBIDDEN")


async def test_export_of_a_past_revision_and_keys_that_collide_in_env(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "db.host", "a")
    await put_entry(client, owner, ns, "db.host", "b")
    past = await export(client, owner, ns, "properties", revision=1)
    assert past.headers["ETag"] == '"1"' and "db.host=a\n" in past.text
    assert_error(await export(client, owner, ns, "env", revision=7), 422, "VALIDATION_ERROR")
    await put_entry(client, owner, ns, "db_host", "c")
    collision = await export(client, owner, ns, "env")
    error = assert_error(collision, 409, "CONFLICT")
    assert error["details"] == {"name": "DB_HOST", "keys": ["db.host", "db_host"]}
    ambiguous = await import_file(client, owner, ns, "DB_HOST=d\n", format="env")
    assert_error(ambiguous, 422, "VALIDATION_ERROR")
    assert (await export(client, owner, ns, "properties")).status_code == 200
    assert_error(await export(client, owner, ns, "toml"), 422, "VALIDATION_ERROR")
