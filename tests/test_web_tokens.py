"""Web UI tokens: service accounts, a token's secret shown once, scopes, revocation, roles."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Account, add_user
from tests.support.namespaces import make_ns
from tests.support.web import browser, csrf_of, post_form, sign_in, text_of

TOKENS = "/ui/admin/tokens"


async def create_account(client: httpx.AsyncClient, name: str) -> str:
    made = await post_form(client, TOKENS, "/ui/admin/service-accounts", {"name": name})
    assert made.status_code == 303, made.text
    page = await client.get(TOKENS)
    found = re.search(rf'<option value="([0-9a-f-]{{36}})" >Service account {name}<', page.text)
    assert found, "the new account is not offered as an owner"
    return found.group(1)


async def create_token(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    return await post_form(client, TOKENS, TOKENS, fields)


async def test_a_token_is_shown_once_works_and_can_be_revoked(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    written = await client.put(
        f"/api/v1/namespaces/{ns}/configs/currency", headers=owner.headers, json={"value": "EUR"}
    )
    assert written.status_code == 201
    await sign_in(client, owner.email)
    account = await create_account(client, "billing-worker")
    made = await create_token(
        client,
        name="billing-reader",
        owner=account,
        scopes="payments/* read",
        expires_in_days="30",
    )
    assert made.status_code == 303
    assert "konfig_new_token" in made.headers["set-cookie"]
    shown = await client.get(made.headers["location"])
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-token" class="code" value="(kfg_[^"]+)"', shown.text)
    assert secret, shown.text
    assert "shown only this once" in shown.text
    assert 'data-copy="new-token"' in shown.text
    read = await client.get(
        "/api/v1/config/payments/production",
        headers={"Authorization": f"Bearer {secret.group(1)}"},
    )
    assert read.status_code == 200 and read.json() == {"currency": "EUR"}

    again = await client.get(made.headers["location"])  # a reload
    assert secret.group(1) not in again.text
    assert "cannot be shown again" in again.text
    listed = await client.get(TOKENS)
    assert secret.group(1) not in listed.text
    row = text_of(listed.text.split('data-name="billing-reader"')[1].split("</tr>")[0])
    assert "service account billing-worker" in row
    assert "payments/* read" in row
    assert "active" in row and "expires" in row

    token_id = re.search(r'action="/ui/admin/tokens/([0-9a-f-]{36})/revoke"', listed.text)
    assert token_id
    revoked = await post_form(client, TOKENS, f"{TOKENS}/{token_id.group(1)}/revoke", {})
    assert revoked.status_code == 303
    assert "Revoked billing-reader" in (await client.get(TOKENS)).text
    refused = await client.get(
        "/api/v1/config/payments/production",
        headers={"Authorization": f"Bearer {secret.group(1)}"},
    )
    assert refused.status_code == 401
    assert "billing-reader" not in (await client.get(TOKENS)).text  # revoked are hidden
    assert "billing-reader" in (await client.get(TOKENS, params={"revoked": "1"})).text


async def test_the_secret_cookie_opens_only_for_its_login_and_token(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    made = await create_token(client, name="mine", owner="me", scopes="payments read")
    cookie = made.cookies["konfig_new_token"]
    async with browser(app) as other:
        await sign_in(other, owner.email)  # the same person, another login
        other.cookies.set("konfig_new_token", cookie, path=TOKENS)
        page = await other.get(made.headers["location"])
        assert page.status_code == 200
        assert "cannot be shown again" in page.text
        assert "kfg_" not in page.text


async def test_the_token_form_puts_each_problem_next_to_its_field(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    bad = await create_token(
        client,
        name="",
        owner="me",
        scopes="payments/* read\nBAD PATTERN! read",
        expires_in_days="x",
    )
    assert bad.status_code == 422
    assert 'id="name-error"' in bad.text
    assert 'id="expires_in_days-error"' in bad.text
    no_perm = await create_token(client, name="t", owner="me", scopes="payments/*")
    assert re.search(r'id="scopes-error">line 1: after the pattern, write its perm', no_perm.text)
    pattern = await create_token(client, name="t", owner="me", scopes="ok read\nBad! read")
    assert re.search(r'id="scopes-error">line 2: ', pattern.text)
    perms = await create_token(client, name="t", owner="me", scopes="payments delete")
    assert re.search(r'id="scopes-error">line 1: permissions are read, secrets', perms.text)
    assert 'value="t"' in perms.text  # what was typed stays
    none = await client.get(TOKENS)
    assert "No active tokens yet" in none.text


async def test_a_viewer_holds_read_tokens_only_and_sees_only_their_own(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    await create_token(client, name="owners-token", owner="me", scopes="payments read")
    viewer = await add_user(client, owner, "view@acme.example.com", "viewer")
    async with browser(app) as ui:
        await sign_in(ui, viewer.email)
        page = await ui.get(TOKENS)
        assert page.status_code == 200
        assert "owners-token" not in page.text
        refused = await post_form(
            ui, TOKENS, TOKENS, {"name": "w", "owner": "me", "scopes": "payments read write"}
        )
        assert refused.status_code == 422
        assert re.search(r'id="scopes-error">Your grants do not let you write', refused.text)
        no_secrets = await post_form(
            ui, TOKENS, TOKENS, {"name": "s", "owner": "me", "scopes": "payments read secrets"}
        )
        assert no_secrets.status_code == 422
        assert re.search(
            r'id="scopes-error">Your grants do not let you see secrets', no_secrets.text
        )
        made = await post_form(
            ui, TOKENS, TOKENS, {"name": "viewer-read", "owner": "me", "scopes": "payments read"}
        )
        assert made.status_code == 303
        assert "viewer-read" in (await ui.get(TOKENS)).text
        denied = await post_form(ui, TOKENS, "/ui/admin/service-accounts", {"name": "x"})
        assert denied.status_code == 403
    # Each refusal is in the audit log, as the API's are, under the viewer's name.
    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "permission.denied"}
    )
    refusals = [e for e in audit.json()["items"] if e["actor"] == f"user:{viewer.user_id}"]
    reasons = sorted(e["summary"]["reason"] for e in refusals)
    assert len(reasons) == 3, reasons
    assert "admin role" in reasons[0]
    assert "secret" in reasons[1] and "write" in reasons[2]


async def test_service_accounts_are_created_and_deleted_with_their_tokens(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await sign_in(client, owner.email)
    bad = await post_form(client, TOKENS, "/ui/admin/service-accounts", {"name": "Bad Name"})
    assert bad.status_code == 422
    assert 'id="account_name-error">Use lowercase letters' in bad.text
    account = await create_account(client, "worker")
    taken = await post_form(client, TOKENS, "/ui/admin/service-accounts", {"name": "worker"})
    assert taken.status_code == 422
    assert "already exists" in taken.text
    made = await create_token(client, name="worker-token", owner=account, scopes="a read")
    shown = await client.get(made.headers["location"])
    secret = re.search(r'value="(kfg_[^"]+)"', shown.text)
    assert secret
    gone = await post_form(client, TOKENS, f"/ui/admin/service-accounts/{account}/delete", {})
    assert gone.status_code == 303
    page = await client.get(TOKENS)
    assert "Deleted service account worker" in page.text
    assert "worker-token" not in page.text
    refused = await client.get(
        "/api/v1/config/a", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert refused.status_code == 401


async def test_another_tenant_cannot_see_or_revoke_a_token(
    app: Any, client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    await sign_in(client, owner.email)
    made = await create_token(client, name="private", owner="me", scopes="a read")
    token_id = made.headers["location"].split("/")[-2]
    async with browser(app) as ui:
        await sign_in(ui, other_tenant.email)
        assert "private" not in (await ui.get(TOKENS)).text
        assert (await ui.get(made.headers["location"])).status_code == 404
        opened = await ui.get(TOKENS)
        revoke = await ui.post(
            f"{TOKENS}/{token_id}/revoke", data={"csrf_token": csrf_of(opened.text)}
        )
        assert revoke.status_code == 404
    assert "private" in (await client.get(TOKENS)).text
