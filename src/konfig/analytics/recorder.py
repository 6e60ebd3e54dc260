"""The read path's record of who read what, kept in memory until the next flush.

``Recorder.record`` runs for every answer of the read path and OFREP, so it is a tuple, a dict
lookup and a few list stores: no database, no lock (the event loop is the only writer), no
parsing (header values are kept as the bytes that came in, decoded when written). It holds one
entry per instance and namespace seen since the last flush, at most ``max_instances`` of them:
past that, new instances are counted as dropped until the flush empties it, so memory stays
bounded however many clients there are. OFREP's evaluations are counted per flag, variant and
caller beside the entries (``evaluations``) and written in the same flush.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from konfig.analytics.evaluations import EvaluationCounts

# An entry's fields, in a list mutated in place (cheaper than an object's attributes).
# ``konfig.delivery.handler`` inlines ``record``'s common case with these indices.
TENANT, RESOLVED, SEEN, SDK, READS, NOT_MODIFIED, PUSHES, PUSHED, EVALUATED, EVALUATED_304 = range(
    10
)
# What an answer was, as the index of the counter it adds to (SEEN: a heartbeat, no answer).
READ, CONFIRMED, PUSHED_STATE, ALIVE = READS, NOT_MODIFIED, PUSHES, SEEN
# OFREP's answers apart: they deliver the namespace's flags, not its other keys.
EVALUATION, EVALUATION_304 = EVALUATED, EVALUATED_304

# (actor, namespace, instance id as sent (bytes) or the caller's address (str))
EntryKey = tuple[str, str, bytes | str]
Entry = list[Any]


def answers(entry: Entry) -> tuple[int, int, int]:
    """An entry's reads (OFREP evaluations among them), 304s and pushes."""
    return (
        entry[READS] + entry[EVALUATED],
        entry[NOT_MODIFIED] + entry[EVALUATED_304],
        entry[PUSHES],
    )


def delivered_keys(entry: Entry) -> Any:
    """The keys an entry's answers delivered: every key of its state when the read path sent or
    confirmed it, only the flags when OFREP alone answered, none for a heartbeat."""
    resolution = entry[RESOLVED].resolution
    if entry[READS] or entry[NOT_MODIFIED] or entry[PUSHES]:
        return resolution.sources.items()
    if entry[EVALUATED] or entry[EVALUATED_304]:
        return [(key, resolution.sources[key]) for key in resolution.flags]
    return ()


class Recorder:
    """Entries since the last drain, and the totals Prometheus reads between flushes."""

    __slots__ = (
        "compacted_at",
        "dropped",
        "enabled",
        "entries",
        "evaluations",
        "flushing",
        "instances",
        "marked",
        "max_instances",
        "now",
        "served",
        "stale",
    )

    def __init__(self, *, max_instances: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.max_instances = max_instances
        self.entries: dict[EntryKey, Entry] = {}
        self.flushing: dict[EntryKey, Entry] = {}  # drained, being written: still unwritten
        self.dropped = 0  # instances not recorded because the record was full
        # OFREP evaluations per flag, variant and caller: counted whether or not the record
        # of instances is enabled (the flags' pages and metric need them).
        self.evaluations = EvaluationCounts()
        # (tenant, namespace, every key or its flags only) → (state, when) its keys were last
        # marked read (service.flush).
        self.marked: dict[tuple[uuid.UUID, str, bool], tuple[str, float]] = {}
        # For Prometheus: answers per namespace name since the process started (written ones),
        # and every replica's instances and stale instances per namespace at the last flush.
        self.served: dict[str, list[int]] = {}
        self.instances: dict[str, int] = {}
        self.stale: dict[str, int] = {}
        self.compacted_at = 0.0
        # The time answers are stamped with, set by ``tick`` (a clock read per answer costs as
        # much as the rest of ``record``): precise to the ticker's period.
        self.now = time.time()

    def tick(self) -> None:
        self.now = time.time()

    def record(
        self,
        tenant_id: uuid.UUID,
        actor: str,
        namespace: str,
        who: bytes | str,
        sdk: bytes | None,
        resolved: Any,
        kind: int,
    ) -> None:
        """An answer (``kind``: READ, CONFIRMED, PUSHED_STATE or ALIVE) to the instance ``who``
        (its ``X-Konfig-Instance``, or its address when it sent none) holding ``resolved``."""
        # Literal indices (RESOLVED 1, SEEN 2, PUSHES 6, PUSHED 7): globals cost a lookup each.
        entry = self.entries.get((actor, namespace, who))
        now = self.now
        if entry is None:
            if len(self.entries) >= self.max_instances:
                self.dropped += 1
                return
            entry = [tenant_id, resolved, now, sdk, 0, 0, 0, None, 0, 0]
            self.entries[(actor, namespace, who)] = entry
        else:
            entry[1] = resolved
            entry[2] = now
        if kind != 2:  # ALIVE: seen, nothing answered
            entry[kind] += 1
            if kind == 6:
                entry[7] = now

    def drain(self) -> dict[EntryKey, Entry]:
        """The entries since the last drain; the record starts empty. They stay among the
        ``unwritten`` until ``written`` says they are in the database."""
        drained, self.entries = self.entries, {}
        self.flushing = drained
        return drained

    def written(self) -> None:
        self.flushing = {}

    def unwritten(self) -> list[tuple[EntryKey, Entry]]:
        """Entries not in the database yet: those being written, then those since."""
        return [*self.flushing.items(), *self.entries.items()]

    def restore(self, drained: dict[EntryKey, Entry]) -> None:
        """Put back entries a failed write could not keep, unless newer ones came since."""
        self.flushing = {}
        entries = self.entries
        for key, entry in drained.items():
            newer = entries.get(key)
            if newer is None:
                if len(entries) < self.max_instances:
                    entries[key] = entry
            else:
                for counter in (READS, NOT_MODIFIED, PUSHES, EVALUATED, EVALUATED_304):
                    newer[counter] += entry[counter]

    def count_namespace(self, key: EntryKey, entry: Entry) -> None:
        """Add a written entry's answers to its namespace's totals."""
        served = self.served.get(key[1])
        if served is None:
            served = self.served[key[1]] = [0, 0, 0]
        for i, number in enumerate(answers(entry)):
            served[i] += number

    def pending(self, tenant_id: uuid.UUID, namespace: str) -> list[tuple[EntryKey, Entry]]:
        """This replica's entries for a namespace not written yet."""
        return [
            (key, entry)
            for key, entry in self.unwritten()
            if key[1] == namespace and entry[TENANT] == tenant_id
        ]
