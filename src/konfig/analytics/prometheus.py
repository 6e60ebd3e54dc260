"""Analytics for Prometheus: answers by namespace, instances and stale instances by namespace.

Label sets stay bounded: the ``KONFIG_ANALYTICS_METRIC_NAMESPACES`` busiest namespaces get a
label each, the rest are summed under ``namespace="(other)"``. Namespace names are not unique
across tenants; a series sums the tenants that share a name.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from konfig.analytics.recorder import Recorder
from konfig.analytics.recorder import answers as answers_of

OTHER = "(other)"


def top(values: dict[str, int], limit: int) -> list[tuple[str, int]]:
    """The ``limit`` largest by value, by name, then the rest summed as ``(other)``."""
    ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:limit]
    rest = sum(number for _, number in ranked[limit:])
    if len(ranked) > limit:
        kept.append((OTHER, rest))
    return kept


class AnalyticsMetrics:
    """A custom collector over the recorder's figures (read when scraped)."""

    def __init__(self, recorder: Recorder, *, limit: int, waiting: object) -> None:
        self.recorder = recorder
        self.limit = limit
        self.waiting = waiting  # the read path: ``waiting``, long polls and streams open

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        recorder = self.recorder
        served: dict[str, list[int]] = {
            name: list(counts) for name, counts in list(recorder.served.items())
        }
        for (_, namespace, _), entry in recorder.unwritten():
            counts = served.setdefault(namespace, [0, 0, 0])
            for i, number in enumerate(answers_of(entry)):
                counts[i] += number
        answers = CounterMetricFamily(
            "konfig_namespace_reads",
            "Answers on the read path and OFREP by namespace (the busiest, the rest as "
            "'(other)') and kind: read (sent), not_modified (304), push (long poll, stream).",
            labels=["namespace", "kind"],
        )
        totals = {name: sum(counts) for name, counts in served.items()}
        kept = {name for name, _ in top(totals, self.limit)}
        by_label: dict[str, list[int]] = {}
        for name, counts in served.items():
            label = name if name in kept else OTHER
            summed = by_label.setdefault(label, [0, 0, 0])
            for i in range(3):
                summed[i] += counts[i]
        for label, counts in sorted(by_label.items()):
            for kind, number in zip(("read", "not_modified", "push"), counts, strict=True):
                answers.add_metric([label, kind], number)
        yield answers
        stale = GaugeMetricFamily(
            "konfig_stale_instances",
            "Instances still on an older revision KONFIG_ANALYTICS_STALE_SECONDS after a change, "
            "every replica's, by namespace (as of the last flush).",
            labels=["namespace"],
        )
        for name, number in top(dict(recorder.stale), self.limit):
            stale.add_metric([name], number)
        yield stale
        instances = GaugeMetricFamily(
            "konfig_client_instances",
            "Instances seen in the last day, every replica's, by namespace (at the last flush).",
            labels=["namespace"],
        )
        for name, number in top(dict(recorder.instances), self.limit):
            instances.add_metric([name], number)
        yield instances
        yield GaugeMetricFamily(
            "konfig_clients_connected",
            "Clients holding a long poll or an event stream open on this replica.",
            value=float(getattr(self.waiting, "waiting", 0)),
        )
        yield CounterMetricFamily(
            "konfig_analytics_dropped",
            "Answers to new instances not recorded because KONFIG_ANALYTICS_MAX_INSTANCES were "
            "held since the last flush.",
            value=recorder.dropped,
        )
