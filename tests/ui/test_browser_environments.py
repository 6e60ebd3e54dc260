"""Across environments in a real browser, on SQLite and PostgreSQL: compare staging with
production, see which keys differ, copy two values across in one reviewed revision; find every
namespace that sets max_connections from the search box."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.support.servers import ServerProcess, start_server
from tests.ui.conftest import api_login, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EMAIL = "pat@platform.example.com"
PASSWORD = "SecurePassword123"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def env_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A real server on each backend the comparison and search read differently."""
    folder = tmp_path_factory.mktemp(f"environments-{request.param}")
    if request.param == "sqlite":
        running = start_server(folder)
        try:
            yield running
        finally:
            running.stop()
        return
    url = asyncio.run(create_pg_database())
    try:
        running = start_server(folder, KONFIG_DATABASE_URL=url)
        try:
            yield running
        finally:
            running.stop()
    finally:
        asyncio.run(drop_pg_database(url))


def _scene(server: ServerProcess) -> tuple[dict[str, str], dict[str, str]]:
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"name": "platform", "email": EMAIL, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(server, EMAIL, PASSWORD)
    ids = {}
    for name in ("payments/staging", "payments/production", "orders/production"):
        made = httpx.post(f"{server.url}/api/v1/namespaces", headers=owner, json={"name": name})
        ids[name] = str(made.json()["id"])
    entries = {
        "payments/staging": {"max_connections": 20, "timeout": 30, "retries": 5},
        "payments/production": {"max_connections": 100, "timeout": 30, "retries": 3},
        "orders/production": {"max_connections": 40},
    }
    for name, values in entries.items():
        for key, value in values.items():
            httpx.put(
                f"{server.url}/api/v1/namespaces/{ids[name]}/configs/{key}",
                headers=owner,
                json={"value": value, "value_type": "number"},
            ).raise_for_status()
    httpx.put(
        f"{server.url}/api/v1/namespaces/{ids['payments/staging']}/configs/feature_x",
        headers=owner,
        json={"value": True, "value_type": "boolean"},
    ).raise_for_status()
    return owner, ids


async def test_compare_copy_two_values_in_one_revision_and_search_a_key(
    chromium: Any, env_server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    owner, ids = _scene(env_server)
    production = ids["payments/production"]
    page = await new_page(chromium, env_server)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Namespaces", exact=True)).to_be_visible()

    # Find every namespace that sets max_connections.
    await page.get_by_label("Search namespaces and keys").fill("max_connections")
    await page.get_by_role("button", name="Search").click()
    hits = page.locator("#key-hits tbody tr")
    await expect(hits).to_have_count(3)
    found = sorted(await hits.evaluate_all("rows => rows.map(r => r.dataset.namespace)"))
    assert found == ["orders/production", "payments/production", "payments/staging"]
    await expect(page.get_by_text("Nothing matches")).to_have_count(0)

    # Compare staging and production side by side.
    await page.get_by_role("link", name="Compare", exact=True).click()
    await page.get_by_label("Environment 1").select_option("payments/staging")
    await page.get_by_label("Environment 2").select_option("payments/production")
    await page.get_by_role("button", name="Compare", exact=True).click()
    grid = page.locator("#compare-grid")
    await expect(grid).to_be_visible()
    await expect(grid.locator('tr[data-key="max_connections"]')).to_contain_text("≠ differs")
    await expect(grid.locator('tr[data-key="retries"]')).to_contain_text("≠ differs")
    await expect(grid.locator('tr[data-key="timeout"]')).to_contain_text("= same")
    await expect(grid.locator('tr[data-key="feature_x"]')).to_contain_text("— not set")
    differing = grid.locator('tr[data-key="max_connections"] td.cell-different')
    await expect(differing).to_have_count(2)
    colour = await differing.first.evaluate("cell => getComputedStyle(cell).backgroundColor")
    plain = await grid.locator('tr[data-key="timeout"] td.cell').first.evaluate(
        "cell => getComputedStyle(cell).backgroundColor"
    )
    assert colour != plain  # colour as well as the text marker
    await page.screenshot(path=str(screenshots / "compare.png"), full_page=True)
    # Dark mode follows the system's preference.
    light = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    await page.emulate_media(color_scheme="dark")
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") != light
    await page.screenshot(path=str(screenshots / "compare-dark.png"), full_page=True)
    await page.emulate_media(color_scheme="light")

    # Copy two values from staging to production: review, then apply as one revision.
    before = httpx.get(f"{env_server.url}/api/v1/namespaces/{production}", headers=owner).json()
    await page.get_by_label("Copy max_connections").check()
    await page.get_by_label("Copy feature_x").check()
    await page.get_by_label("From").select_option("payments/staging")
    await page.get_by_label("To").select_option("payments/production")
    await page.get_by_role("button", name="Review the copy").click()
    await expect(
        page.get_by_role(
            "heading", name="Copy 2 keys from payments/staging to payments/production?"
        )
    ).to_be_visible()
    await expect(page.locator('tr[data-key="max_connections"]')).to_contain_text("~ changed")
    await expect(page.locator('tr[data-key="feature_x"]')).to_contain_text("+ added")
    await page.get_by_label("Why").fill("production matches staging")
    await page.get_by_role("button", name="Apply the copy").click()
    await expect(page.get_by_text("Copied 2 keys from payments/staging")).to_be_visible()
    await expect(grid.locator('tr[data-key="max_connections"]')).to_contain_text("= same")
    await expect(grid.locator('tr[data-key="retries"]')).to_contain_text("≠ differs")

    after = httpx.get(f"{env_server.url}/api/v1/namespaces/{production}", headers=owner).json()
    assert after["revision"] == before["revision"] + 1  # one revision for both keys
    revisions = httpx.get(
        f"{env_server.url}/api/v1/namespaces/{production}/revisions", headers=owner
    ).json()["items"]
    assert revisions[0]["message"] == "production matches staging"
    assert page.csp_violations == []


async def test_a_config_built_from_references_follows_the_referenced_key(
    chromium: Any, env_server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    email = "ref@platform.example.com"
    registered = httpx.post(
        f"{env_server.url}/api/v1/auth/register",
        json={"name": "referring", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(env_server, email, PASSWORD)
    ids = {}
    for name in ("shared/production", "payments/production"):
        made = httpx.post(f"{env_server.url}/api/v1/namespaces", headers=owner, json={"name": name})
        ids[name] = str(made.json()["id"])
    httpx.put(
        f"{env_server.url}/api/v1/namespaces/{ids['shared/production']}/configs/db_host",
        headers=owner,
        json={"value": "db1.internal"},
    ).raise_for_status()

    page = await new_page(chromium, env_server)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    payments = f"/ui/namespaces/{ids['payments/production']}"
    await page.goto(payments)
    # A reference to a key that does not exist is refused, naming the chain.
    await page.get_by_label("Key").fill("database_url")
    await page.locator("#add-value_string").fill("postgres://${ref:shared/production:db_hots}/pay")
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.get_by_text("shared/production has no key db_hots")).to_be_visible()
    await page.locator("#add-value_string").fill("postgres://${ref:shared/production:db_host}/pay")
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.get_by_text("Added database_url")).to_be_visible()

    await page.goto(f"{payments}/resolved")
    row = page.locator("#resolved-database_url")
    await expect(row).to_contain_text("postgres://db1.internal/pay")
    await expect(row).to_contain_text("built from shared/production:db_host")

    # Change the referenced key in the UI: the service's config follows.
    await page.goto(f"/ui/namespaces/{ids['shared/production']}/entries/db_host")
    await page.locator("#edit-value_string").fill("db2.internal")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_text("Saved db_host")).to_be_visible()
    await page.goto(f"{payments}/resolved")
    await expect(page.locator("#resolved-database_url")).to_contain_text(
        "postgres://db2.internal/pay"
    )
    await page.screenshot(path=str(screenshots / "resolved-references.png"), full_page=True)
    served = httpx.get(f"{env_server.url}/api/v1/config/payments/production", headers=owner)
    assert served.json()["database_url"] == "postgres://db2.internal/pay"

    # A token for that service, its scopes picked from the namespace list.
    await page.goto("/ui/admin/tokens")
    await page.get_by_label("Token name").fill("payments-reader")
    await page.get_by_label("Pick a namespace").fill("payments/production")
    await page.get_by_label("Permissions").select_option("read secrets")
    await page.get_by_role("button", name="Add to the scopes").click()
    await page.get_by_label("Pick a namespace").fill("shared/production")
    await page.get_by_label("Permissions").select_option("read")
    await page.get_by_role("button", name="Add to the scopes").click()
    await expect(page.get_by_label("Scopes", exact=True)).to_have_value(
        "payments/production read secrets\nshared/production read"
    )
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_role("heading", name="Token payments-reader")).to_be_visible()
    await expect(page.locator("#new-token")).to_have_value(re.compile(r"^kfg_"))
    assert page.csp_violations == []


async def test_a_template_reports_that_staging_lacks_a_required_key(
    chromium: Any, env_server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    email = "tpl@platform.example.com"
    registered = httpx.post(
        f"{env_server.url}/api/v1/auth/register",
        json={"name": "templated", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(env_server, email, PASSWORD)
    ids = {}
    for name in ("payments", "payments/staging", "payments/production"):
        made = httpx.post(f"{env_server.url}/api/v1/namespaces", headers=owner, json={"name": name})
        ids[name] = str(made.json()["id"])
    for name, key, value in (
        ("payments/production", "db_host", "db.prod"),
        ("payments/production", "max_connections", 100),
        ("payments/staging", "max_connections", 20),
    ):
        httpx.put(
            f"{env_server.url}/api/v1/namespaces/{ids[name]}/configs/{key}",
            headers=owner,
            json={"value": value, "value_type": "number" if isinstance(value, int) else "string"},
        ).raise_for_status()

    page = await new_page(chromium, env_server)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(f"/ui/namespaces/{ids['payments']}")
    await page.get_by_role("link", name="Template", exact=True).click()
    template = (
        '{"keys": [{"key": "db_host", "value_type": "string", "required": true},'
        ' {"key": "max_connections", "value_type": "number", "required": true, "default": 20,'
        ' "validation_schema": {"min_value": 1, "max_value": 500}}]}'
    )
    await page.get_by_label("Template (JSON)").fill(template)
    await page.get_by_role("button", name="Save the template").click()
    await expect(page.get_by_text("Saved the template.")).to_be_visible()
    staging = page.locator('#conformance tr[data-namespace="payments/staging"]')
    await expect(staging).to_contain_text("✗ does not conform")
    await expect(staging).to_contain_text("db_host")
    await expect(
        page.locator('#conformance tr[data-namespace="payments/production"]')
    ).to_contain_text("✓ conforms")
    await page.screenshot(path=str(screenshots / "template.png"), full_page=True)

    # The environment's own page wears the badge.
    await page.goto(f"/ui/namespaces/{ids['payments/staging']}")
    badge = page.locator(".template-badge")
    await expect(badge).to_contain_text("does not conform to the template of payments")
    await expect(badge).to_contain_text("lacks db_host")
    # Adding the key makes it conform; a new environment starts from the defaults.
    await page.get_by_label("Key").fill("db_host")
    await page.locator("#add-value_string").fill("db.staging")
    await page.get_by_role("button", name="Add entry").click()
    await expect(page.locator(".template-badge")).to_contain_text("✓ conforms")
    await page.goto(f"/ui/namespaces/{ids['payments']}/template")
    await page.get_by_role("textbox", name="Name").fill("payments/qa")
    await page.get_by_role("button", name="Create environment").click()
    await expect(page.get_by_text("Created payments/qa from the template")).to_be_visible()
    await expect(page.locator("#entry-max_connections")).to_contain_text("20")
    assert page.csp_violations == []


async def test_bulk_edit_several_values_and_a_pasted_env_each_as_one_revision(
    chromium: Any, env_server: ServerProcess, screenshots: Path
) -> None:
    from playwright.async_api import expect

    email = "bulk@platform.example.com"
    registered = httpx.post(
        f"{env_server.url}/api/v1/auth/register",
        json={"name": "bulky", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    owner = api_login(env_server, email, PASSWORD)
    made = httpx.post(
        f"{env_server.url}/api/v1/namespaces", headers=owner, json={"name": "orders/production"}
    )
    namespace = str(made.json()["id"])
    api = f"{env_server.url}/api/v1/namespaces/{namespace}"
    httpx.put(
        f"{api}/document",
        headers=owner,
        json={
            "entries": [
                {"key": "timeout", "value": 30, "value_type": "number"},
                {"key": "region", "value": "eu"},
                {"key": "api_key", "value": "k-secret", "is_secret": True},
            ]
        },
    ).raise_for_status()

    def revision() -> int:
        return int(httpx.get(api, headers=owner).json()["revision"])

    before = revision()
    page = await new_page(chromium, env_server)
    await page.goto("/ui/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(f"/ui/namespaces/{namespace}")
    await page.get_by_role("link", name="Bulk edit").click()
    await page.get_by_label("timeout").fill("45")
    await page.get_by_label("region").fill("us")
    await expect(page.get_by_label("api_key")).to_have_value("********")
    await page.get_by_role("button", name="Review the changes").click()
    await expect(page.get_by_role("heading", name="Review 2 changes")).to_be_visible()
    assert revision() == before
    await page.get_by_role("button", name="Apply as one revision").click()
    await expect(page.get_by_text(f"now at revision {before + 1}")).to_be_visible()
    values = {
        e["key"]: e["value"] for e in httpx.get(f"{api}/configs", headers=owner).json()["items"]
    }
    assert values["timeout"] == 45 and values["region"] == "us" and values["api_key"] == "********"

    # Paste a .env block: the diff first, then one revision.
    await page.get_by_role("link", name="Bulk edit").click()
    await page.get_by_label("Paste .env, YAML, JSON or properties").fill(
        "REGION=ap\nfeature_x=on\n"
    )
    await page.get_by_role("button", name="Review the import").click()
    await expect(page.locator("table.diff")).to_contain_text("feature_x")
    await page.screenshot(path=str(screenshots / "bulk-review.png"), full_page=True)
    await page.get_by_role("button", name="Apply as one revision").click()
    await expect(page.get_by_text(f"now at revision {before + 2}")).to_be_visible()
    # Export as a file.
    await page.get_by_role("link", name="Bulk edit").click()
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="env", exact=True).click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".env")
    assert page.csp_violations == []
