"""The UI's emergency path under soft enforcement: an admin's form carries a bypass reason and
commits at once (shown in history); without one, or from an editor, it does not."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import PASSWORD, Account
from tests.support.changes import protect
from tests.support.grants import add_granted, grant
from tests.support.readpath import make_namespace
from tests.support.web import browser, post_form, sign_in, text_of


async def test_an_admin_bypasses_from_the_editor_and_an_editor_cannot(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await make_namespace(client, owner, "payments/production")
    await protect(client, owner, "payments/production", enforcement="soft")
    editor = await add_granted(
        client, owner, "ed@acme.example.com", [grant("editor", "payments/**")]
    )
    page = f"/ui/namespaces/{ns}"
    action = f"{page}/entries"
    fields = {"key": "limit", "value_type": "string", "value_string": "9"}
    async with browser(app) as admin_ui, browser(app) as editor_ui:
        await sign_in(admin_ui, owner.email, PASSWORD)
        await sign_in(editor_ui, editor.email, PASSWORD)
        shown = await admin_ui.get(page)
        assert "protected (soft)" in text_of(shown.text) and "Bypass reason" in shown.text
        assert "Bypass reason" not in (await editor_ui.get(page)).text

        forged = await post_form(editor_ui, page, action, {**fields, "bypass_reason": "me"})
        assert forged.status_code == 403 and "admin or owner" in text_of(forged.text)
        proposed = await post_form(admin_ui, page, action, {**fields, "bypass_reason": " "})
        assert proposed.status_code == 303
        assert proposed.headers["location"].startswith("/ui/change-requests/")
        bypassed = await post_form(
            admin_ui, page, action, {**fields, "key": "mode", "bypass_reason": "incident 9"}
        )
        assert bypassed.status_code == 303 and bypassed.headers["location"].startswith(page)
    (revision,) = (
        await client.get(f"/api/v1/namespaces/{ns}/revisions", headers=owner.headers)
    ).json()["items"]
    assert revision["keys"] == ["mode"] and revision["message"].startswith("[bypass: incident 9]")
