"""Web UI namespace settings: an admin changes the description and includes, or deletes it."""

from __future__ import annotations

import httpx

from tests.conftest import Account, add_user
from tests.support.namespaces import make_ns
from tests.support.web import post_form, sign_in, text_of


async def namespace_of(client: httpx.AsyncClient, owner: Account, ns: str) -> httpx.Response:
    return await client.get(f"/api/v1/namespaces/{ns}", headers=owner.headers)


async def test_an_admin_changes_the_description_and_includes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await make_ns(client, owner, "shared")
    ns = (await make_ns(client, owner, "payments"))["id"]
    await sign_in(client, owner.email)
    page = f"/ui/namespaces/{ns}"
    saved = await post_form(
        client, page, f"{page}/settings", {"description": " Payments ", "includes": "shared"}
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == page
    assert "Namespace settings saved." in text_of((await client.get(page)).text)
    stored = (await namespace_of(client, owner, ns)).json()
    assert (stored["description"], stored["includes"]) == ("Payments", ["shared"])


async def test_bad_includes_are_shown_next_to_the_field_and_change_nothing(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments", description="before"))["id"]
    await sign_in(client, owner.email)
    page = f"/ui/namespaces/{ns}"
    for includes in ("no/such/namespace", "Not A Name"):
        refused = await post_form(
            client, page, f"{page}/settings", {"description": "after", "includes": includes}
        )
        assert refused.status_code == 422, refused.text
        assert 'id="settings-includes"' in refused.text and 'aria-invalid="true"' in refused.text
        assert f'value="{includes}"' in refused.text  # what was typed is kept
    assert (await namespace_of(client, owner, ns)).json()["description"] == "before"


async def test_deleting_a_namespace_with_entries_needs_the_box_ticked(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments"))["id"]
    created = await client.post(
        f"/api/v1/namespaces/{ns}/configs", headers=owner.headers, json={"key": "k", "value": "v"}
    )
    assert created.status_code == 201, created.text
    await sign_in(client, owner.email)
    page = f"/ui/namespaces/{ns}"
    kept = await post_form(client, page, f"{page}/delete", {})
    assert kept.status_code == 409, kept.text
    assert 'class="field-error" role="alert"' in kept.text
    assert (await namespace_of(client, owner, ns)).status_code == 200
    deleted = await post_form(client, page, f"{page}/delete", {"force": "yes"})
    assert deleted.status_code == 303, deleted.text
    assert deleted.headers["location"] == "/ui"
    assert "Deleted namespace payments." in text_of((await client.get("/ui")).text)
    assert (await namespace_of(client, owner, ns)).status_code == 404


async def test_a_namespace_others_reference_is_kept_and_the_page_names_them(
    client: httpx.AsyncClient, owner: Account
) -> None:
    shared = (await make_ns(client, owner, "shared"))["id"]
    payments = (await make_ns(client, owner, "payments"))["id"]
    for ns, key, value in ((shared, "db_host", "db"), (payments, "url", "${ref:shared:db_host}")):
        created = await client.post(
            f"/api/v1/namespaces/{ns}/configs",
            headers=owner.headers,
            json={"key": key, "value": value},
        )
        assert created.status_code == 201, created.text
    await sign_in(client, owner.email)
    page = f"/ui/namespaces/{shared}"
    kept = await post_form(client, page, f"{page}/delete", {"force": "yes"})
    assert kept.status_code == 409, kept.text
    assert "payments:url references it, so it cannot be deleted" in text_of(kept.text)
    assert (await namespace_of(client, owner, shared)).status_code == 200


async def test_an_editor_can_neither_change_nor_delete_a_namespace(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments", description="before"))["id"]
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    await sign_in(client, editor.email)
    page = f"/ui/namespaces/{ns}"
    for action, form in (("settings", {"description": "x", "includes": ""}), ("delete", {})):
        refused = await post_form(client, page, f"{page}/{action}", form)
        assert refused.status_code == 403, refused.text
    assert (await namespace_of(client, owner, ns)).json()["description"] == "before"
