"""The issue's "done when": the OpenFeature Python SDK with its OFREP provider (code no one here
wrote) evaluates Konfig's flags on a live `konfig serve`, with a `kfg_` token."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from konfig.client import AsyncKonfig, Konfig, KonfigError, NotFound
from konfig.flags.definition import Flag
from tests.conftest import PASSWORD
from tests.support.apps import konfig_serve
from tests.support.cli import Cli

pytestmark = pytest.mark.slow

NAMESPACE = "shop/production"
ON_OFF = {"on": True, "off": False}


class Admin:
    """The tenant's owner, over the HTTP API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.email = email = f"owner-{uuid.uuid4().hex[:8]}@shop.example.com"
        name = f"shop-{uuid.uuid4().hex[:8]}"
        registered = self.http.post(
            "/api/v1/auth/register", json={"name": name, "email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        login = self.http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        self.http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        created = self.http.post("/api/v1/namespaces", json={"name": NAMESPACE})
        self.namespace = created.json()["id"]

    def flag(self, key: str, definition: dict[str, Any]) -> None:
        answer = self.http.put(
            f"/api/v1/namespaces/{self.namespace}/configs/{key}",
            json={"value": definition, "value_type": "flag"},
        )
        assert answer.status_code in (200, 201), answer.text

    def token(self) -> str:
        name = f"storefront-{uuid.uuid4().hex[:8]}"
        account = self.http.post("/api/v1/service-accounts", json={"name": name})
        scopes = [{"namespaces": NAMESPACE, "permissions": ["read"]}]
        created = self.http.post(
            "/api/v1/tokens",
            json={"name": name, "scopes": scopes, "service_account_id": account.json()["id"]},
        )
        return str(created.json()["token"])


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Admin, OpenFeatureClient]]:
    with konfig_serve(Path(tmp_path_factory.mktemp("ofrep"))) as (url, _):
        admin = Admin(url)
        token = admin.token()  # scoped to the one namespace: no namespace header needed
        api.set_provider(
            OFREPProvider(url, headers_factory=lambda: {"Authorization": f"Bearer {token}"})
        )
        yield url, admin, api.get_client()
        api.clear_providers()
        admin.http.close()


def test_kill_switch_reaches_the_sdk_at_once(live: tuple[str, Admin, OpenFeatureClient]) -> None:
    _, admin, client = live
    switch = {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "off", "targeting": "on"}
    admin.flag("payments_enabled", switch)
    user = EvaluationContext("user-1")
    details = client.get_boolean_details("payments_enabled", False, user)
    assert (details.value, details.reason, details.variant) == (True, Reason.TARGETING_MATCH, "on")
    admin.flag("payments_enabled", {**switch, "state": "DISABLED"})
    details = client.get_boolean_details("payments_enabled", True, user)  # the very next call
    assert (details.value, details.reason, details.variant) == (False, Reason.DISABLED, "off")
    missing = client.get_boolean_details("no_such_flag", True, user)
    assert (missing.value, missing.error_code.value if missing.error_code else None) == (
        True,
        "FLAG_NOT_FOUND",
    )


def test_string_split_and_targeting_rule(live: tuple[str, Admin, OpenFeatureClient]) -> None:
    _, admin, client = live
    variants = {"control": "Buy now", "treatment": "Get it today"}
    admin.flag(
        "checkout_copy",
        {
            "state": "ENABLED",
            "variants": variants,
            "defaultVariant": "control",
            "targeting": {
                "if": [
                    {"ends_with": [{"var": "email"}, "@shop.example.com"]},
                    "treatment",
                    {"fractional": [["control", 50], ["treatment", 50]]},
                ]
            },
        },
    )
    staff = client.get_string_details(
        "checkout_copy", "?", EvaluationContext("u-1", {"email": "ann@shop.example.com"})
    )
    assert (staff.value, staff.reason) == ("Get it today", Reason.TARGETING_MATCH)
    seen: Counter[str] = Counter()
    for i in range(400):
        details = client.get_string_details("checkout_copy", "?", EvaluationContext(f"u-{i}"))
        assert details.reason == Reason.SPLIT
        seen[details.value] += 1
    assert set(seen) == set(variants.values()) and min(seen.values()) > 140  # about half each
    # The same user gets the same variant every time.
    again = {
        client.get_string_value("checkout_copy", "?", EvaluationContext("u-7")) for _ in range(5)
    }
    assert len(again) == 1


def _rollout(percent: int) -> dict[str, Any]:
    targeting = {"fractional": [["new", percent], ["old", 100 - percent]]}
    variants = {"new": "v2", "old": "v1"}
    return {
        "state": "ENABLED",
        "variants": variants,
        "defaultVariant": "old",
        "targeting": targeting,
    }


def test_rollout_10_to_20_percent_keeps_its_users(
    live: tuple[str, Admin, OpenFeatureClient],
) -> None:
    """100,000 targeting keys through the evaluator the server runs; 1,000 of them through the
    SDK and the live server, which must agree key by key."""
    _, admin, client = live
    keys = [f"customer-{i}" for i in range(100_000)]
    ten = Flag("pricing", _rollout(10), {})
    twenty = Flag("pricing", _rollout(20), {})
    first = {k for k in keys if ten.evaluate({"targetingKey": k}).variant == "new"}
    second = {k for k in keys if twenty.evaluate({"targetingKey": k}).variant == "new"}
    assert 9_000 <= len(first) <= 11_000  # 10 % ± 1 point of 100,000
    assert 19_000 <= len(second) <= 21_000
    assert first <= second  # raising to 20 % keeps every one of them

    sample = keys[:1_000]
    admin.flag("pricing", _rollout(10))
    served_10 = {
        k for k in sample if client.get_string_value("pricing", "?", EvaluationContext(k)) == "v2"
    }
    assert served_10 == first & set(sample)
    admin.flag("pricing", _rollout(20))
    served_20 = {
        k for k in sample if client.get_string_value("pricing", "?", EvaluationContext(k)) == "v2"
    }
    assert served_20 == second & set(sample) and served_10 <= served_20


def test_disabling_reaches_a_connected_event_stream(
    live: tuple[str, Admin, OpenFeatureClient],
) -> None:
    """A client-side provider's way: bulk evaluation, then the SSE stream its answer names; a
    change sends `refetchEvaluation`, and the refetch sees the flag disabled."""
    url, admin, _ = live
    admin.flag("banner", {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "on"})
    token = admin.token()
    headers = {"Authorization": f"Bearer {token}"}
    context = {"context": {"targetingKey": "u-1"}}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        bulk = http.post("/ofrep/v1/evaluate/flags", json=context)
        stream_uri = bulk.json()["eventStreams"][0]["endpoint"]["requestUri"]
        events: list[dict[str, Any]] = []
        listening = threading.Event()
        heard = threading.Event()

        def listen() -> None:
            with http.stream("GET", stream_uri) as stream:
                for line in stream.iter_lines():
                    listening.set()
                    if line.startswith("data: "):
                        events.append(orjson.loads(line[6:]))
                        heard.set()
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert listening.wait(30), "the event stream never opened"
        admin.flag("banner", {"state": "DISABLED", "variants": ON_OFF, "defaultVariant": "on"})
        assert heard.wait(30), "no refetchEvaluation event"
        assert events[0]["type"] == "refetchEvaluation"
        refetch = http.post(
            "/ofrep/v1/evaluate/flags",
            params={"flagConfigEtag": events[0]["etag"]},
            headers={"If-None-Match": bulk.headers["etag"]},
            json=context,
        )
        assert refetch.status_code == 200
        banner = next(f for f in refetch.json()["flags"] if f["key"] == "banner")
        assert banner["reason"] == "DISABLED"
        listener.join(10)


def test_cli_and_sdk(live: tuple[str, Admin, OpenFeatureClient], tmp_path: Path) -> None:
    """`konfig flags set|list|get|disable|eval|enable`, and the SDK's `flags.evaluate`."""
    url, admin, _ = live
    cli = Cli(tmp_path / "home", url, admin.email)
    cli.ok("login", "--url", url, "--email", admin.email, "--password", PASSWORD)
    definition = tmp_path / "search.json"
    definition.write_text(
        json.dumps(
            {
                "state": "ENABLED",
                "variants": {"fast": "v2", "classic": "v1"},
                "defaultVariant": "classic",
                "targeting": {"if": [{"sem_ver": [{"var": "app"}, ">=", "2.0.0"]}, "fast", None]},
            }
        )
    )
    cli.ok("flags", "set", NAMESPACE, "search", "--file", str(definition))
    refused = cli("flags", "set", NAMESPACE, "broken", '{"state": "ON", "variants": {"a": 1}}')
    assert refused.returncode != 0 and "broken" in refused.stderr and "state" in refused.stderr
    new_app = json.loads(
        cli.ok("flags", "eval", NAMESPACE, "search", "-k", "u-1", "-c", '{"app": "2.1.0"}')
    )
    assert (new_app["value"], new_app["reason"]) == ("v2", "TARGETING_MATCH")
    cli.ok("flags", "disable", NAMESPACE, "search")
    assert json.loads(cli.ok("flags", "get", NAMESPACE, "search"))["state"] == "DISABLED"
    off = json.loads(cli.ok("flags", "eval", NAMESPACE, "search", "-c", '{"app": "2.1.0"}'))
    assert (off["value"], off["reason"]) == ("v1", "DISABLED")
    cli.ok("flags", "enable", NAMESPACE, "search")
    listed = json.loads(cli.ok("flags", "list", NAMESPACE, "-o", "json"))
    search = next(f for f in listed if f["key"] == "search")
    assert search["state"] == "ENABLED" and search["evaluations"] >= 1
    assert json.loads(cli.ok("flags", "stale", "-o", "json")) == []  # all fresh
    table = cli.ok("flags", "list", NAMESPACE)
    assert "search" in table and "fast, classic" in table
    assert cli("flags", "get", NAMESPACE, "nothing").returncode != 0
    admin.http.put(
        f"/api/v1/namespaces/{admin.namespace}/configs/plain", json={"value": "text"}
    ).raise_for_status()
    for args, said in (
        (("flags", "get", NAMESPACE, "plain"), "not a flag"),
        (("flags", "set", NAMESPACE, "x"), "one of the two"),
        (("flags", "set", NAMESPACE, "x", "{nope"), "not JSON"),
        (("flags", "eval", NAMESPACE, "search", "-c", "[1]"), "JSON object"),
    ):
        failed = cli(*args)
        assert failed.returncode != 0 and said in failed.stderr, (args, failed.stderr)

    with Konfig(url, admin.token()) as sdk:
        answer = sdk.flags.evaluate("search", {"targetingKey": "u-2", "app": "1.9.0"})
        assert (answer["variant"], answer["reason"]) == ("classic", "DEFAULT")
        bulk = sdk.flags.evaluate_all({"targetingKey": "u-2", "app": "3.0.0"})
        assert {f["key"]: f.get("variant") for f in bulk["flags"]}["search"] == "fast"
        with pytest.raises(NotFound) as missing:
            sdk.flags.evaluate("nothing", {"targetingKey": "u"})
        assert missing.value.code == "FLAG_NOT_FOUND"
        with (
            Konfig(url, admin.http.headers["Authorization"][7:]) as person,
            pytest.raises(ValueError, match="not a flag"),
        ):
            person.flags.disable(NAMESPACE, "plain")
        admin.flag("split", _rollout(50))
        with pytest.raises(KonfigError) as no_key:
            sdk.flags.evaluate("split", {"email": "x@y.example.com"})
        assert no_key.value.code == "TARGETING_KEY_MISSING"


async def test_async_sdk(live: tuple[str, Admin, OpenFeatureClient]) -> None:
    url, admin, _ = live
    admin.flag("async_flag", {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "on"})
    async with AsyncKonfig(url, admin.http.headers["Authorization"].removeprefix("Bearer ")) as sdk:
        flags = await sdk.flags.list(NAMESPACE)
        with Konfig(url, sdk.token) as person:
            counts = person.flags.evaluations(NAMESPACE, "async_flag", hours=2)
        assert counts["key"] == "async_flag" and counts["totals"] == {}
        assert "async_flag" in {f["key"] for f in flags}
        answer = await sdk.flags.evaluate("async_flag", {"targetingKey": "u"}, namespace=NAMESPACE)
        assert answer["value"] is True
        both = await sdk.flags.evaluate_all({"targetingKey": "u"}, namespace=NAMESPACE)
        assert any(f["key"] == "async_flag" for f in both["flags"])
        await sdk.flags.set(
            NAMESPACE,
            "async_flag",
            {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "off"},
        )
        await sdk.flags.disable(NAMESPACE, "async_flag")
        answer = await sdk.flags.evaluate("async_flag", {"targetingKey": "u"}, namespace=NAMESPACE)
        assert (answer["value"], answer["reason"]) == (False, "DISABLED")
