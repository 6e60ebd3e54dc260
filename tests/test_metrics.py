"""Prometheus metrics at /metrics: requests by route template, and every later feature's series."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from konfig.app import create_app
from konfig.metrics import Metrics
from konfig.settings import Settings
from tests.conftest import Account, make_settings
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for _ in range(2):
        assert (await client.get("/health")).status_code == 200
    for user_id in (owner.user_id, "00000000-0000-0000-0000-000000000000"):
        await client.get(f"/api/v1/users/{user_id}", headers=owner.headers)
    await client.get("/api/v1/no-such-route")
    await client.get("/api/v1/config/payments/production")  # the read path (a later feature)

    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    http = "konfig_http_requests_total"
    assert value(text, http, method="GET", route="/health", status="200") == 2
    user = "/api/v1/users/{user_id}"
    assert value(text, http, method="GET", route=user, status="200") == 1
    assert value(text, http, method="GET", route=user, status="404") == 1
    assert value(text, http, method="GET", route="<unmatched>", status="404") == 1
    duration = "konfig_http_request_duration_seconds"
    assert value(text, f"{duration}_count", method="GET", route="/health") == 2
    assert value(text, f"{duration}_bucket", method="GET", route="/health", le="+Inf") == 2
    assert value(text, f"{duration}_count", method="GET", route=user) == 2
    # The read path is counted and timed like every answer, by its route template.
    read_path = "/api/v1/config/{name}"
    assert value(text, http, method="GET", route=read_path, status="401") == 1
    assert value(text, f"{duration}_count", method="GET", route=read_path) == 1
    label_values = {value for _, labels in samples(text) for _, value in labels}
    assert "/api/v1/config/payments/production" not in label_values  # no raw path
    assert owner.user_id not in text


async def test_reads_cache_hits_and_writes_are_counted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "payments")
    await set_entry(client, owner, namespace, "timeout", 5, value_type="number")
    await set_entry(client, owner, namespace, "region", "eu")
    token = await make_token(client, owner, read("payments"))
    headers = bearer(token["token"])
    first = await client.get("/api/v1/config/payments", headers=headers)  # loaded: a miss
    again = await client.get("/api/v1/config/payments", headers=headers)  # from the cache
    unchanged = await client.get(
        "/api/v1/config/payments", headers={**headers, "If-None-Match": first.headers["etag"]}
    )
    assert (first.status_code, again.status_code, unchanged.status_code) == (200, 200, 304)
    refused = await client.get("/api/v1/config/orders", headers=headers)
    assert refused.status_code == 403  # not a config served

    text = (await client.get("/metrics")).text
    assert value(text, "konfig_config_reads_total") == 3
    assert value(text, "konfig_config_cache_hits_total") == 2
    assert value(text, "konfig_config_writes_total") == 2


async def test_every_feature_metric_is_exported(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "konfig_config_reads",
        "konfig_config_cache_hits",
        "konfig_config_writes",
        "konfig_config_events",
        "konfig_active_watchers",
        "konfig_notifications",
        "konfig_backup_age_seconds",
        "konfig_backup_failures",
        "konfig_rate_limited_requests",
        "process_resident_memory_bytes",
    } <= families
    assert value(text, "konfig_backup_age_seconds") == -1


def test_metrics_are_per_app_and_move(tmp_path: Path) -> None:
    settings: Settings = make_settings("sqlite+aiosqlite:///unused.db", tmp_path)
    first, second = create_app(settings), create_app(settings)  # no duplicated timeseries
    assert first.state.metrics.registry is not second.state.metrics.registry

    metrics = Metrics()
    metrics.delivery.reads += 1
    metrics.delivery.cache_hits += 1
    metrics.delivery.writes += 3
    metrics.active_watchers.inc()
    metrics.notifications.labels(direction="sent").inc()
    metrics.backup_failures.inc()
    metrics.backup_succeeded()
    text = metrics.render().decode()
    assert value(text, "konfig_config_reads_total") == 1
    assert value(text, "konfig_config_writes_total") == 3
    assert value(text, "konfig_active_watchers") == 1
    assert value(text, "konfig_notifications_total", direction="sent") == 1
    assert 0 <= value(text, "konfig_backup_age_seconds") < 3600
    assert value(Metrics().render().decode(), "konfig_config_reads_total") == 0
