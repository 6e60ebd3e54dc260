"""Usage analytics: which service instance reads which namespace and holds which state, the
stale ones after a change, traffic per namespace and token, and keys no one reads any more.

The read path records each answer in memory (``recorder.Recorder``: a few dict operations), and
OFREP counts each evaluation per flag, variant and caller (``evaluations.EvaluationCounts``, the
recorder's ``evaluations``); ``service.flush`` writes what was gathered every
``KONFIG_ANALYTICS_FLUSH_SECONDS``, so every replica's clients and counts meet in the database,
and ``service.compact`` rolls traffic and flag evaluations up (minute → hour → day) and
forgets what is older than ``KONFIG_ANALYTICS_RETENTION_DAYS``.
"""
