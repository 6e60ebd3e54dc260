"""Every Prometheus metric Konfig exports, defined in one place and registered per app.

Each app gets its own ``CollectorRegistry`` so tests (and anything else) can build many apps in
one process without "duplicated timeseries" errors. Features reach the metrics through
``AppState.metrics`` (``konfig.state.state_of(request)``) and only ever ``inc``/``set`` them.

Multi-process serving (``konfig serve --workers N``) is out of scope: each worker keeps its own
registry, so a scrape sees one worker's figures. Scale out with more replicas (one process each),
which Prometheus scrapes one by one.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Login hashes a password (tens of ms); the read path answers in about a millisecond.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's registry and the collectors in it."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

        # HTTP, observed by the access middleware.
        self.http_requests = Counter(
            "konfig_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_request_duration = Histogram(
            "konfig_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

        # Configuration delivery (the read path and the writers increment these).
        self.config_reads = Counter(
            "konfig_config_reads", "Resolved configs served to services.", registry=registry
        )
        self.config_cache_hits = Counter(
            "konfig_config_cache_hits",
            "Resolved configs served from the rendered cache.",
            registry=registry,
        )
        self.config_writes = Counter(
            "konfig_config_writes", "Committed changes (new revisions).", registry=registry
        )
        self.active_watchers = Gauge(
            "konfig_active_watchers",
            "Long-poll and event-stream clients waiting for a change.",
            registry=registry,
        )
        self.notifications = Counter(
            "konfig_notifications",
            "Change notifications, sent to or received from other replicas.",
            ["direction"],
            registry=registry,
        )

        # Backups.
        self._last_backup_at: float | None = None
        self.backup_age = Gauge(
            "konfig_backup_age_seconds",
            "Seconds since the last successful backup (-1 before the first one).",
            registry=registry,
        )
        self.backup_age.set_function(self._backup_age)
        self.backup_failures = Counter(
            "konfig_backup_failures", "Backups that failed.", registry=registry
        )

        # Rate limits.
        self.rate_limited = Counter(
            "konfig_rate_limited_requests",
            "Requests refused with 429, by the limit they hit.",
            ["limit"],
            registry=registry,
        )

    def backup_succeeded(self, at: float | None = None) -> None:
        """Record a successful backup (``at``: a ``time.time()`` timestamp, now by default)."""
        self._last_backup_at = time.time() if at is None else at

    def backup_event(self, event: Any) -> None:
        """Listener for the backups' status: age on success, the failure counter otherwise."""
        if event.outcome == "success":
            self.backup_succeeded(event.at.timestamp())
        else:
            self.backup_failures.inc()

    def _backup_age(self) -> float:
        if self._last_backup_at is None:
            return -1.0
        return max(0.0, time.time() - self._last_backup_at)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
