"""Every Prometheus metric Konfig exports, defined in one place and registered per app.

Each app gets its own ``CollectorRegistry`` so tests (and anything else) can build many apps in
one process without "duplicated timeseries" errors. Features reach the metrics through
``AppState.metrics`` (``konfig.state.state_of(request)``) and only ever ``inc``/``set`` them.

Multi-process serving (``konfig serve --workers N``) is out of scope: each worker keeps its own
registry, so a scrape sees one worker's figures. Scale out with more replicas (one process each),
which Prometheus scrapes one by one.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Login hashes a password (tens of ms); the read path answers in about a millisecond.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """``konfig_http_requests_total`` by method, route template and status, and the histogram
    ``konfig_http_request_duration_seconds`` by method and route template.

    Kept in plain dicts and lists and turned into Prometheus families when scraped (a custom
    collector, prometheus_client's documented way): every answer is observed, the read path's
    included, and ``Counter.inc`` with ``Histogram.observe`` (a lock each, the bucket found by a
    linear scan) cost about as much as a fifth of a cached read. The event loop is the only
    writer; a scrape copies the dicts before walking them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._answered: dict[tuple[str, str, int], int] = {}
        # Per (method, route): the count in each bucket (the last: beyond the largest bound),
        # then the sum of the durations.
        self._timed: dict[tuple[str, str], list[float]] = {}
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self._answered[key] = self._answered.get(key, 0) + 1
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self._timed[(method, route)] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        timed[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        timed[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        answered = CounterMetricFamily(
            "konfig_http_requests",
            "HTTP requests answered, by route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self._answered.items()):
            answered.add_metric([method, route, str(status)], count)
        yield answered
        timed = HistogramMetricFamily(
            "konfig_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            labels=["method", "route"],
        )
        for (method, route), counts in list(self._timed.items()):
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip((*_LATENCY_BUCKETS, math.inf), counts, strict=False):
                cumulative += in_bucket
                buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
            timed.add_metric([method, route], buckets, sum_value=counts[-1])
        yield timed


class DeliveryCounts:
    """``konfig_config_reads_total`` (resolved configs answered, 200 or 304),
    ``konfig_config_cache_hits_total`` (of those, answered from the rendered cache) and
    ``konfig_config_writes_total`` (revisions committed by this process) and
    ``konfig_config_events_total`` (change events sent on event streams, by ``path``: ``direct``,
    written straight to the connection by the loop that hands a change to every stream, or
    ``asgi``, sent by the stream's own task; ``konfig.delivery.stream``).

    Plain integers the event loop adds to, turned into Prometheus families when scraped (as
    ``RequestMetrics``): the read path counts every answer, and ``Counter.inc`` takes a lock.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reads = 0
        self.cache_hits = 0
        self.writes = 0
        self.events_direct = 0
        self.events_asgi = 0
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for name, documentation, value in (
            ("konfig_config_reads", "Resolved configs served to services.", self.reads),
            (
                "konfig_config_cache_hits",
                "Resolved configs served from the rendered cache.",
                self.cache_hits,
            ),
            ("konfig_config_writes", "Committed changes (new revisions).", self.writes),
        ):
            yield CounterMetricFamily(name, documentation, value=value)
        events = CounterMetricFamily(
            "konfig_config_events",
            "Change events sent on event streams, by path (direct: written to the connection "
            "by the change's one loop; asgi: by the stream's own task).",
            labels=["path"],
        )
        events.add_metric(["direct"], self.events_direct)
        events.add_metric(["asgi"], self.events_asgi)
        yield events


class Metrics:
    """The app's registry and the collectors in it."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

        # HTTP, observed for every answer (``konfig.ops.middleware.Exchange``).
        self.requests = RequestMetrics(registry)

        # Configuration delivery (the read path and the commit hook add to these).
        self.delivery = DeliveryCounts(registry)
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

        # Webhooks (konfig.webhooks.worker).
        self.webhook_deliveries = Counter(
            "konfig_webhook_deliveries",
            "Webhook attempts by outcome: succeeded, retrying (failed, tried again later), "
            "failed (given up, or the endpoint gone).",
            ["outcome"],
            registry=registry,
        )
        self.webhook_queue_depth = Gauge(
            "konfig_webhook_queue_depth",
            "Webhook deliveries and events waiting to be sent.",
            registry=registry,
        )
        self.webhook_oldest_pending_age = Gauge(
            "konfig_webhook_oldest_pending_age_seconds",
            "Age of the oldest webhook delivery or event still waiting.",
            registry=registry,
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
