"""Flag evaluation counts: per tenant, namespace, flag, variant and caller, kept in memory.

Part of the analytics record (``Recorder.evaluations``): an evaluation costs one dict increment
(never a database write); ``service.flush`` drains the counts with the rest of the record and
writes them beside the traffic (``analytics_flag_evaluations``, rolled up minute → hour → day);
``totals`` keeps the running sums Prometheus scrapes (``konfig_flag_evaluations_total``).
The caller's instance and SDK are the record's entries: the evaluation request is one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric

CountKey = tuple[uuid.UUID, str, str, str, str]  # tenant, namespace, flag, variant, actor
# One remembered bulk answer: (flag, variant) of each flag that answered a variant.
Outcomes = tuple[tuple[str, str], ...]
SPREAD_AT = 4096  # distinct answers held before they are spread into per-flag counts


class EvaluationCounts:
    """Counts since the last drain, and totals since the process started."""

    def __init__(self) -> None:
        self.pending: dict[CountKey, int] = {}
        self.flushing: dict[CountKey, int] = {}  # drained, being written: still unwritten
        # Remembered bulk answers sent: one increment each, spread over their flags on drain.
        self.answers: dict[tuple[uuid.UUID, str, str, int], list[Any]] = {}
        self.totals: dict[tuple[str, str, str], int] = {}  # namespace, flag, variant

    def count(
        self, tenant_id: uuid.UUID, namespace: str, flag: str, variant: str | None, actor: str
    ) -> None:
        key = (tenant_id, namespace, flag, variant or "", actor)
        self.pending[key] = self.pending.get(key, 0) + 1

    def count_answer(
        self, tenant_id: uuid.UUID, namespace: str, actor: str, outcomes: Outcomes
    ) -> None:
        """A bulk answer's evaluations, counted with one increment."""
        key = (tenant_id, namespace, actor, id(outcomes))
        held = self.answers.get(key)
        if held is None:
            if len(self.answers) >= SPREAD_AT:  # many different answers: keep memory bounded
                self._spread()
            self.answers[key] = [outcomes, 1]
        else:
            held[1] += 1

    def _spread(self) -> None:
        answers, self.answers = self.answers, {}
        pending = self.pending
        for (tenant_id, namespace, actor, _), (outcomes, number) in answers.items():
            for flag, variant in outcomes:
                key = (tenant_id, namespace, flag, variant, actor)
                pending[key] = pending.get(key, 0) + number

    def unwritten(self) -> dict[CountKey, int]:
        """The counts not in the database yet: those being written, and those since."""
        self._spread()
        found = dict(self.flushing)
        for key, number in self.pending.items():
            found[key] = found.get(key, 0) + number
        return found

    def drain(self) -> dict[CountKey, int]:
        """The counts since the last drain (they move to ``totals``, and stay ``unwritten``
        until ``written``)."""
        self._spread()
        drained, self.pending = self.pending, {}
        self.flushing = drained
        for (_, namespace, flag, variant, _), number in drained.items():
            total_key = (namespace, flag, variant)
            self.totals[total_key] = self.totals.get(total_key, 0) + number
        return drained

    def written(self) -> None:
        self.flushing = {}

    def restore(self, drained: dict[CountKey, int]) -> None:
        """Put back counts a failed write could not keep (they are written next time)."""
        self.flushing = {}
        for key, number in drained.items():
            self.pending[key] = self.pending.get(key, 0) + number
        for (_, namespace, flag, variant, _), number in drained.items():
            self.totals[(namespace, flag, variant)] -= number

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        self._spread()
        family = CounterMetricFamily(
            "konfig_flag_evaluations",
            "Feature flag evaluations served over OFREP, by namespace, flag and variant.",
            labels=["namespace", "flag", "variant"],
        )
        sums = dict(self.totals)
        for (_, namespace, flag, variant, _), number in list(self.pending.items()):
            sums[(namespace, flag, variant)] = sums.get((namespace, flag, variant), 0) + number
        for (namespace, flag, variant), number in sorted(sums.items()):
            family.add_metric([namespace, flag, variant], number)
        yield family
