"""Flags in the UI: the list, adding one, a flag's page with its variants, rollout weights,
targeting editor, kill switch and evaluation counts; a viewer sees but does not change."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.conftest import Account, add_user
from tests.support.readpath import bearer, make_namespace, make_token, read
from tests.support.web import csrf_of, post_form, sign_in, text_of

ROLLOUT = {
    "state": "ENABLED",
    "variants": {"new": "v2", "old": "v1"},
    "defaultVariant": "old",
    "targeting": {"fractional": [["new", 10], ["old", 90]]},
}


async def _definition(client: httpx.AsyncClient, owner: Account, ns: str, key: str) -> Any:
    answer = await client.get(f"/api/v1/namespaces/{ns}/configs/{key}", headers=owner.headers)
    return answer.json()["value"]


async def test_add_a_flag_roll_it_out_target_it_and_kill_it(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await make_namespace(client, owner, "web/production")
    await sign_in(client, owner.email)
    flags_url = f"/ui/namespaces/{ns}/flags"
    empty = await client.get(flags_url)
    assert "No flags yet" in text_of(empty.text)

    bad = {**ROLLOUT, "targeting": {"fractional": [["new", 10], ["old", 80]]}}
    refused = await post_form(
        client, flags_url, flags_url, {"key": "pricing", "definition": json.dumps(bad)}
    )
    assert refused.status_code == 422
    assert "sum to 100" in text_of(refused.text)
    not_json = await post_form(client, flags_url, flags_url, {"key": "pricing", "definition": "{"})
    assert not_json.status_code == 422 and "Not JSON" in text_of(not_json.text)
    added = await post_form(
        client, flags_url, flags_url, {"key": "pricing", "definition": json.dumps(ROLLOUT)}
    )
    assert added.status_code == 303, added.text
    flag_url = added.headers["location"]
    again = await post_form(
        client, flags_url, flags_url, {"key": "pricing", "definition": json.dumps(ROLLOUT)}
    )
    assert again.status_code == 409

    token = (await make_token(client, owner, read("web/production")))["token"]
    for user in range(30):
        evaluated = await client.post(
            "/ofrep/v1/evaluate/flags/pricing",
            headers=bearer(token),
            json={"context": {"targetingKey": f"user-{user}"}},
        )
        assert evaluated.status_code == 200
    opened = await client.get(flag_url)
    shown = text_of(opened.text)
    assert "Flag pricing" in shown and "Turn off (kill switch)" in shown
    assert "data-rollout-slider" in opened.text and 'name="weight_new" ' in opened.text
    assert "<svg" in opened.text and "Evaluations per hour" in opened.text
    counts = {
        variant: int(count)
        for variant, count in re.findall(
            r'data-variant="(\w+)".*?data-count>(\d+)<', opened.text, flags=re.DOTALL
        )
    }
    assert sum(counts.values()) == 30 and counts["new"] < counts["old"]
    assert "Evaluated by" in shown and re.search(r"token:[0-9a-f-]+ 30", shown)
    listed = await client.get(flags_url)
    assert "data-evaluations>30<" in listed.text

    token_ = csrf_of((await client.get(flag_url)).text)

    async def rollout(new: str, old: str, version: str) -> httpx.Response:
        data = {"variant": ["new", "old"], "weight_new": new, "weight_old": old}
        return await client.post(
            f"{flag_url}/weights", data={**data, "version": version, "csrf_token": token_}
        )

    saved = await rollout("20", "80", "1")
    assert saved.status_code == 303, saved.text
    assert (await _definition(client, owner, ns, "pricing"))["targeting"] == {
        "fractional": [["new", 20], ["old", 80]]
    }
    uneven = await rollout("30", "80", "2")
    assert uneven.status_code == 422 and "sum to 100" in text_of(uneven.text)
    assert (await rollout("thirty", "70", "2")).status_code == 422
    stale = await rollout("30", "70", "1")
    assert stale.status_code == 412 and "Someone else changed" in text_of(stale.text)

    rules = {"if": [{"ends_with": [{"var": "email"}, "@acme.test"]}, "new", None]}
    targeted = await post_form(
        client, flag_url, f"{flag_url}/targeting", {"targeting": json.dumps(rules), "version": "2"}
    )
    assert targeted.status_code == 303, targeted.text
    assert (await _definition(client, owner, ns, "pricing"))["targeting"] == rules
    unsafe = await post_form(
        client, flag_url, f"{flag_url}/targeting", {"targeting": '{"eval": 1}', "version": "3"}
    )
    assert unsafe.status_code == 422 and "unknown operator" in text_of(unsafe.text)
    broken = await post_form(
        client, flag_url, f"{flag_url}/targeting", {"targeting": "{oops", "version": "3"}
    )
    assert broken.status_code == 422 and "{oops" in broken.text
    cleared = await post_form(
        client, flag_url, f"{flag_url}/targeting", {"targeting": "", "version": "3"}
    )
    assert cleared.status_code == 303
    assert "targeting" not in await _definition(client, owner, ns, "pricing")

    killed = await post_form(
        client, flag_url, f"{flag_url}/state", {"state": "DISABLED", "version": "4"}
    )
    assert killed.status_code == 303
    answer = await client.post(
        "/ofrep/v1/evaluate/flags/pricing",
        headers=bearer(token),
        json={"context": {"targetingKey": "u"}},
    )
    assert answer.json()["reason"] == "DISABLED"
    revived = await post_form(
        client, flag_url, f"{flag_url}/state", {"state": "ENABLED", "version": "5"}
    )
    assert revived.status_code == 303
    assert "Turn off" in text_of((await client.get(flag_url)).text)


async def test_a_viewer_sees_flags_without_forms(client: httpx.AsyncClient, owner: Account) -> None:
    ns = await make_namespace(client, owner, "web/production")
    put = await client.put(
        f"/api/v1/namespaces/{ns}/configs/pricing",
        headers=owner.headers,
        json={"value": ROLLOUT, "value_type": "flag"},
    )
    assert put.status_code == 201
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    await sign_in(client, viewer.email)
    listed = await client.get(f"/ui/namespaces/{ns}/flags")
    assert "Add a flag" not in text_of(listed.text) and "pricing" in text_of(listed.text)
    page_ = await client.get(f"/ui/namespaces/{ns}/flags/pricing")
    assert "Turn off" not in text_of(page_.text) and "fractional" in page_.text
    assert "Not evaluated in the last 24 hours" in text_of(page_.text)
    # The namespace page links a flag to its page, and the entry editor sends it there.
    entries = await client.get(f"/ui/namespaces/{ns}")
    assert f"/ui/namespaces/{ns}/flags/pricing" in entries.text
    editor = await client.get(f"/ui/namespaces/{ns}/entries/pricing")
    assert editor.status_code == 303
    assert editor.headers["location"] == f"/ui/namespaces/{ns}/flags/pricing"
    missing = await client.get(f"/ui/namespaces/{ns}/flags/nothing")
    assert missing.status_code == 404
    refused = await client.post(
        f"/ui/namespaces/{ns}/flags/pricing/state",
        data={"state": "DISABLED", "version": "1", "csrf_token": csrf_of(page_.text)},
    )
    assert refused.status_code == 403
