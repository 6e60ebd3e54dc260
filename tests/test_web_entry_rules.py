"""The entry editor shows an editor the rules read-only; the value is saved within them, and a
form that would change them anyway is refused by the server."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Account, add_user
from tests.support.namespaces import make_ns
from tests.support.web import csrf_of, post_form, sign_in, text_of

POOL = {
    "key": "pool",
    "value": 10,
    "value_type": "number",
    "validation_schema": {"min_value": 1, "max_value": 1000},
}


def configs(ns: str, key: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configs" + (f"/{key}" if key else "")


def field(page: str, name: str) -> str:
    """The tag of the form control named ``name``."""
    found = re.search(rf'<(input|select|textarea)[^>]*name="{name}"[^>]*>', page)
    assert found, name
    return found.group(0)


async def stored(client: httpx.AsyncClient, owner: Account, ns: str, key: str) -> dict[str, Any]:
    answer = await client.get(configs(ns, key), headers=owner.headers, params={"reveal": "true"})
    return answer.json()  # type: ignore[no-any-return]


async def test_an_editor_saves_values_within_rules_shown_read_only(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = str((await make_ns(client, owner, "payments/production"))["id"])
    for body in (POOL, {"key": "token", "value": "s3cret-value", "is_secret": True}):
        assert (await client.post(configs(ns), headers=owner.headers, json=body)).status_code == 201
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    await sign_in(client, editor.email)
    url = f"/ui/namespaces/{ns}/entries/pool"

    opened = await client.get(url)
    for name in ("value_type", "min_value", "max_value", "integer", "is_secret", "options"):
        assert "disabled" in field(opened.text, name), name
    assert "disabled" not in field(opened.text, "value_number")
    assert "disabled" not in field(opened.text, "description")
    assert "Only admins change an entry's type" in text_of(opened.text)

    # What the browser sends from that form: no rules at all.
    saved = await post_form(
        client, url, url, {"version": "1", "value_number": "500", "description": "per replica"}
    )
    assert saved.status_code == 303, saved.text
    pool = await stored(client, owner, ns, "pool")
    assert pool["value"] == 500 and pool["description"] == "per replica"
    assert pool["value_type"] == "number"
    assert pool["validation_schema"] == POOL["validation_schema"]
    past = await post_form(client, url, url, {"version": "2", "value_number": "50000"})
    assert past.status_code == 422 and "1000" in text_of(past.text)

    # A forged form raising the limit to fit the value is refused, and nothing changes.
    forged = await post_form(
        client,
        url,
        url,
        {"version": "2", "value_type": "number", "value_number": "50000", "max_value": "100000"},
    )
    assert forged.status_code == 403
    assert "validation_schema of pool" in text_of(forged.text)
    assert (await stored(client, owner, ns, "pool"))["value"] == 500

    # A secret edited by an editor stays secret, its value kept when the field is left empty.
    token = f"/ui/namespaces/{ns}/entries/token"
    kept = await post_form(
        client, token, token, {"version": "1", "value_string": "", "description": "psp"}
    )
    assert kept.status_code == 303, kept.text
    rotated = await post_form(client, token, token, {"version": "2", "value_string": "rotated-99"})
    assert rotated.status_code == 303, rotated.text
    secret = await stored(client, owner, ns, "token")
    assert secret["is_secret"] is True and secret["value"] == "rotated-99"
    assert secret["description"] == "psp"


async def test_an_admin_edits_the_rules(client: httpx.AsyncClient, owner: Account) -> None:
    ns = str((await make_ns(client, owner, "payments/production"))["id"])
    assert (await client.post(configs(ns), headers=owner.headers, json=POOL)).status_code == 201
    await sign_in(client, owner.email)
    url = f"/ui/namespaces/{ns}/entries/pool"
    opened = await client.get(url)
    assert "disabled" not in field(opened.text, "max_value")
    raised = await client.post(
        url,
        data={
            "version": "1",
            "value_type": "number",
            "value_number": "50000",
            "min_value": "1",
            "max_value": "100000",
            "csrf_token": csrf_of(opened.text),
        },
    )
    assert raised.status_code == 303, raised.text
    pool = await stored(client, owner, ns, "pool")
    assert pool["value"] == 50000 and pool["validation_schema"]["max_value"] == 100000
