"""The UI in a real browser: register, sign in, organise namespaces, edit typed values, see
another person's change arrive without reloading; screenshots of the main pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EMAIL = "ada@acme.example.com"
PASSWORD = "SecurePassword123"
SEEDED = "grace@globex.example.com"


@pytest.fixture(scope="module")
def seeded(server: ServerProcess) -> str:
    """Another organisation, filled in through the API, for the tests that only look around."""
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "globex", "email": SEEDED, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    headers = api_login(server, SEEDED, PASSWORD)
    for name in ("payments", "payments/production", "shared/production"):
        made = httpx.post(f"{server.url}/api/v1/namespaces", headers=headers, json={"name": name})
        assert made.status_code == 201, made.text
    listed = httpx.get(f"{server.url}/api/v1/namespaces", headers=headers).json()["items"]
    namespace = next(n["id"] for n in listed if n["name"] == "payments/production")
    for entry in (
        {"key": "max_connections", "value": 100, "value_type": "number"},
        {
            "key": "log_level",
            "value": "INFO",
            "value_type": "select",
            "validation_schema": {"options": ["DEBUG", "INFO"]},
        },
        {"key": "api_key", "value": "sk-live-abc", "is_secret": True},
        {"key": "feature_flags", "value": {"new_ui": True}, "value_type": "json"},
    ):
        added = httpx.post(
            f"{server.url}/api/v1/namespaces/{namespace}/configs", headers=headers, json=entry
        )
        assert added.status_code == 201, added.text
    return SEEDED


async def sign_in(page: Any, email: str = EMAIL) -> None:
    from playwright.async_api import expect

    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()


async def add_entry(page: Any, key: str, value_type: str, **fill: str) -> None:
    """Fill the add-entry form: ``fill`` maps field ids (without the 'add-' prefix) to text."""
    await page.get_by_label("Key").fill(key)
    await page.get_by_label("Type").select_option(value_type)
    for field, text in fill.items():
        await page.locator(f"#add-{field}").fill(text)


async def test_register_organise_edit_typed_values_and_see_live_changes(
    chromium: Any, server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    page = await new_page(chromium, server)

    # Register the organisation, sign out, sign back in.
    await page.goto("/ui/register")
    await page.screenshot(path=screenshots / "register-desktop.png")
    await page.get_by_label("Organisation name").fill("acme")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create organisation").click()
    await expect(page.get_by_text("Your organisation acme is ready")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await page.screenshot(path=screenshots / "login-desktop.png")
    await sign_in(page)

    # Organise namespaces: payments > production, plus siblings for a real tree.
    for name in ("shared/production", "payments/staging", "payments", "payments/production"):
        await page.goto("/ui")
        await page.get_by_label("Name", exact=True).fill(name)
        await page.get_by_role("button", name="Create namespace").click()
        await expect(page.get_by_text(f"Created {name}.")).to_be_visible()
    await page.wait_for_url(re.compile(r"/ui/namespaces/[0-9a-f-]{36}$"))
    namespace_url = page.url
    namespace_id = namespace_url.rstrip("/").rsplit("/", 1)[1]

    # A typed value that breaks its rule: the server's verdict appears next to the field.
    await add_entry(page, "max_connections", "number", value_number="5000", max_value="1000")
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.locator("#value_number-error")).to_contain_text("above max_value 1000")
    await expect(page.locator("#add-value_number")).to_have_attribute("aria-invalid", "true")
    await page.screenshot(path=screenshots / "namespace-validation-error.png", full_page=True)
    await page.locator("#add-value_number").fill("500")
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.get_by_text("Added max_connections (revision 1).")).to_be_visible()
    await expect(page.locator("#entry-max_connections")).to_contain_text("500")

    # The JSON editor points at the syntax error before anything is sent.
    await add_entry(
        page, "feature_flags", "json", value_json='{\n  "new_ui": true,\n  "beta" false\n}'
    )
    syntax = page.locator("#add-value_json-syntax")
    await expect(syntax).to_contain_text("Line 3, column 10")
    await page.evaluate("window.konfigMarker = 'not sent'")
    await page.get_by_role("button", name="Add entry").click()
    await expect(syntax).to_be_visible()
    await expect(page.locator("#add-value_json")).to_be_focused()
    assert await page.evaluate("window.konfigMarker") == "not sent"  # no navigation happened
    await page.locator("#add-value_json").fill('{"new_ui": true, "beta": false}')
    await expect(syntax).to_be_hidden()
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.get_by_text("Added feature_flags (revision 2).")).to_be_visible()

    # A select list built from its options, an on/off switch, a secret.
    await add_entry(page, "log_level", "select", options="DEBUG\nINFO\nWARNING")
    await page.locator("#add-value_select").select_option(label="INFO")
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.get_by_text("Added log_level")).to_be_visible()
    await add_entry(page, "maintenance_mode", "boolean")
    await page.get_by_role("switch", name="Enabled").check()
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.locator("#entry-maintenance_mode")).to_contain_text("true")
    await add_entry(page, "database_url", "string", value_string="postgresql://pay:s3cret@db/pay")
    await page.get_by_label("Secret: mask the value everywhere unless revealed").check()
    await page.get_by_role("button", name="Add entry").click()
    secret_row = page.locator("#entry-database_url")
    await expect(secret_row).to_contain_text("********")
    await expect(secret_row).not_to_contain_text("s3cret")
    await page.screenshot(path=screenshots / "namespace-desktop.png", full_page=True)
    await page.get_by_role("button", name="Reveal database_url").click()
    await expect(page.locator("#entry-database_url")).to_contain_text(
        "postgresql://pay:s3cret@db/pay"
    )

    # Someone else changes the namespace through the API: the open page shows it, no reload.
    await page.goto(namespace_url)
    await page.evaluate("window.konfigMarker = 'still the same page'")
    headers = api_login(server, EMAIL, PASSWORD)
    changed = httpx.post(
        f"{server.url}/api/v1/namespaces/{namespace_id}/configs",
        headers=headers,
        json={"key": "request_timeout_ms", "value": 2500, "value_type": "number"},
    )
    assert changed.status_code == 201, changed.text
    await expect(page.locator("#entry-request_timeout_ms")).to_contain_text("2500")
    await expect(page.locator("#live-status")).to_contain_text("revision 6")
    await expect(page.locator("[data-revision-label]")).to_have_text("6")
    assert await page.evaluate("window.konfigMarker") == "still the same page"
    await page.screenshot(path=screenshots / "namespace-live-update.png", full_page=True)

    # The other main pages, for the record.
    await page.goto(f"{namespace_url}/entries/max_connections")
    await expect(page.get_by_role("heading", name="Edit max_connections")).to_be_visible()
    await expect(page.locator("#edit-value_number")).to_have_value("500")
    await page.screenshot(path=screenshots / "entry-editor-desktop.png", full_page=True)
    await page.goto("/ui")
    await expect(page.locator('[data-path="payments/production"]')).to_contain_text("rev 6")
    await page.screenshot(path=screenshots / "dashboard-desktop.png", full_page=True)
    await page.get_by_label("Search namespaces").fill("stag")
    await expect(page.locator('[data-path="payments/production"]')).to_be_hidden()
    await expect(page.locator('[data-path="payments/staging"]')).to_be_visible()
    await page.goto("/ui/admin/users")
    await page.screenshot(path=screenshots / "users-desktop.png", full_page=True)
    await page.goto(f"{namespace_url}/history")
    await expect(page.locator("#revision-6 .revision-number")).to_contain_text("r6 current")
    await page.screenshot(path=screenshots / "history-desktop.png", full_page=True)
    await page.goto(f"{namespace_url}/resolved")
    await expect(page.locator("#resolved-max_connections")).to_contain_text("payments/production")
    await page.screenshot(path=screenshots / "resolved-desktop.png", full_page=True)

    assert page.csp_violations == []


async def test_the_main_pages_on_a_phone(
    chromium: Any, server: ServerProcess, screenshots: Path, seeded: str
) -> None:
    from playwright.async_api import expect

    page = await new_page(chromium, server, phone=True)
    await page.goto("/ui/login")
    await page.screenshot(path=screenshots / "login-phone.png", full_page=True)
    await sign_in(page, seeded)
    await page.screenshot(path=screenshots / "dashboard-phone.png", full_page=True)
    await page.get_by_role("link", name="production").first.click()
    await expect(page.locator("#entries")).to_be_visible()
    # Tables become cards: nothing may be wider than the screen, once the page has settled (a
    # loaded machine measured it mid-layout once).
    await page.wait_for_load_state("load")
    try:
        await page.wait_for_function("document.documentElement.scrollWidth <= 390", timeout=5000)
    except Exception as exc:  # the message says how wide it stayed
        width = await page.evaluate("document.documentElement.scrollWidth")
        raise AssertionError(f"the page stays {width} px wide on a 390 px screen") from exc
    await page.screenshot(path=screenshots / "namespace-phone.png", full_page=True)
    await page.locator("#entries .button", has_text="Edit").first.click()
    await page.screenshot(path=screenshots / "entry-editor-phone.png", full_page=True)
    assert page.csp_violations == []


async def test_keyboard_alone_signs_in_and_reaches_the_editor(
    chromium: Any, server: ServerProcess, seeded: str
) -> None:
    from playwright.async_api import expect

    page = await new_page(chromium, server)
    await page.goto("/ui/login")
    await expect(page.get_by_label("Email")).to_be_focused()  # the form is ready to type in
    await page.keyboard.type(seeded)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()
    await page.keyboard.press("Tab")  # the skip link comes first, and shows it has focus
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    # Tab on to the first namespace of the tree and open it with Enter.
    tree_link = page.locator("a.tree-name").first
    for _ in range(30):
        if await tree_link.evaluate("link => link === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/ui/namespaces/[0-9a-f-]{36}$"))
    await expect(page.get_by_role("heading", name="Add an entry")).to_be_visible()


async def test_history_diff_rollback_and_a_token_shown_once(
    chromium: Any, server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    email = "lin@initech.example.com"
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "initech", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    headers = api_login(server, email, PASSWORD)
    made = httpx.post(
        f"{server.url}/api/v1/namespaces", headers=headers, json={"name": "payments/production"}
    )
    namespace_id = made.json()["id"]
    configs = f"{server.url}/api/v1/namespaces/{namespace_id}/configs"
    for key, value in (("currency", "EUR"), ("timeout", 30)):  # revisions 1 and 2
        kind = "number" if isinstance(value, int) else "string"
        put = httpx.put(
            f"{configs}/{key}", headers=headers, json={"value": value, "value_type": kind}
        )
        assert put.status_code == 201, put.text
    changed = httpx.patch(
        f"{configs}/currency",
        headers={**headers, "X-Konfig-Message": "switch to dollars"},
        json={"value": "USD"},
    )
    assert changed.status_code == 200, changed.text  # revision 3

    page = await new_page(chromium, server)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await sign_in(page, email)
    await page.get_by_role("link", name="production").click()
    await page.get_by_role("link", name="History", exact=True).click()

    # The history: who changed which key, when and why, newest first.
    third = page.locator("#revision-3")
    await expect(third).to_contain_text("switch to dollars")
    await expect(third).to_contain_text("~ changed")
    await expect(third).to_contain_text("by you")
    await page.screenshot(path=screenshots / "history-revisions-desktop.png", full_page=True)

    # Diff two revisions picked in the form.
    await page.get_by_label("From revision", exact=True).fill("0")
    await page.get_by_label("To revision", exact=True).fill("3")
    await page.get_by_role("button", name="Compare").click()
    await expect(page.get_by_role("heading", name="Revision 0 → revision 3")).to_be_visible()
    await expect(page.locator('tr[data-key="currency"]')).to_contain_text("+ added")
    await expect(page.locator('tr[data-key="timeout"]')).to_contain_text("+ added")
    await page.get_by_label("From revision", exact=True).fill("1")
    await page.get_by_role("button", name="Compare").click()
    currency = page.locator('tr[data-key="currency"]')
    await expect(currency).to_contain_text("~ changed")
    await expect(currency).to_contain_text("EUR")
    await expect(currency).to_contain_text("USD")
    await page.screenshot(path=screenshots / "diff-desktop.png", full_page=True)

    # Roll back: the confirmation shows the diff (now → then) before anything changes.
    await page.get_by_role("link", name="Roll back to revision 1…").click()
    await expect(page.get_by_role("heading", name="Roll back to revision 1?")).to_be_visible()
    await expect(page.locator('tr[data-key="currency"]')).to_contain_text("~ changed")
    await expect(page.locator('tr[data-key="timeout"]')).to_contain_text("\N{MINUS SIGN} removed")
    await page.screenshot(path=screenshots / "rollback-confirm-desktop.png", full_page=True)
    still = httpx.get(f"{configs}/currency", headers=headers).json()["value"]
    assert still == "USD"  # reviewing changed nothing
    await page.get_by_label("Why").fill("dollars were a mistake")
    await page.get_by_role("button", name="Roll back to revision 1").click()
    await expect(page.get_by_text("Rolled back to revision 1")).to_be_visible()
    await expect(page.locator("#revision-4")).to_contain_text("dollars were a mistake")
    assert httpx.get(f"{configs}/currency", headers=headers).json()["value"] == "EUR"
    assert httpx.get(f"{configs}/timeout", headers=headers).status_code == 404

    # A token: its secret shown once with a copy button, never again after a reload.
    await page.get_by_role("link", name="Tokens").click()
    await expect(page.get_by_text("No active tokens yet")).to_be_visible()
    await page.get_by_label("Token name").fill("payments-reader")
    await page.get_by_label("Scopes").fill("payments/* read")
    await page.get_by_role("button", name="Create token").click()
    secret_field = page.get_by_label("Token", exact=True)
    await expect(secret_field).to_have_value(re.compile(r"^kfg_"))
    secret = await secret_field.input_value()
    await page.get_by_role("button", name="Copy").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await page.screenshot(path=screenshots / "token-created-desktop.png", full_page=True)
    read = httpx.get(
        f"{server.url}/api/v1/config/payments/production",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert read.json() == {"currency": "EUR"}
    await page.reload()
    await expect(page.get_by_text("cannot be shown again")).to_be_visible()
    assert secret not in await page.content()
    await page.get_by_role("link", name="Back to tokens").click()
    await expect(page.locator('[data-name="payments-reader"]')).to_contain_text("active")
    assert secret not in await page.content()
    await page.screenshot(path=screenshots / "tokens-desktop.png", full_page=True)

    # The other admin pages, for the record.
    await page.get_by_role("link", name="Audit").click()
    await expect(page.locator('tr[data-action="config.update"]').first).to_be_visible()
    await page.screenshot(path=screenshots / "audit-desktop.png", full_page=True)
    await page.get_by_role("link", name="Backups").click()
    await page.get_by_role("button", name="Back up now").click()
    await expect(page.get_by_text("Backed up 1 namespaces")).to_be_visible()
    await page.get_by_role("link", name=re.compile("Review restoring")).first.click()
    await expect(page.get_by_role("heading", name="Nothing would change")).to_be_visible()
    await page.goto("/ui/admin/backups")
    await page.screenshot(path=screenshots / "backups-desktop.png", full_page=True)
    assert page.csp_violations == []
